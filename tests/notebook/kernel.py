"""Run notebooks in a real IPython kernel (nbclient); installs the ``python3`` kernel spec if it is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

REPO = Path(__file__).resolve().parents[2]


def ensure_kernel_spec() -> str:
    """The ``python3`` kernel spec; installed into this environment (``--sys-prefix``) on a clean machine."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix"], check=True,
                       capture_output=True)
    return "python3"


def run_notebook(nb: Any, cwd: Path, timeout: int = 180) -> Any:
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name=ensure_kernel_spec(),
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def run_cells(*sources: str, cwd: Path = REPO, timeout: int = 120) -> Any:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return run_notebook(nb, cwd, timeout)


def text_of(cell: Any, stream: str = "stdout") -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == stream)


def errors(nb: Any) -> list[str]:
    """Error outputs, and stderr text that looks like one."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                found.append(f"{out.ename}: {out.evalue}")
            elif out.output_type == "stream" and out.name == "stderr" and (
                    "Traceback" in out.text or "Error" in out.text):
                found.append(out.text)
    return found
