"""``import trainforge`` stays light: no optional integration, no slow library, in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["wandb", "onnx", "onnxruntime", "optuna", "ray", "lightning", "transformers", "datasets", "tokenizers",
         "tensorboard", "mlflow", "matplotlib", "pandas", "yaml", "tqdm", "safetensors"]


def test_import_trainforge_imports_no_optional_package():
    # Measured against plain `import torch`: torch itself pulls in a few of these (tqdm via torch.hub).
    code = (
        "import sys, json; import torch; base = set(sys.modules); import trainforge; "
        "from trainforge import Trainer, TrainingConfig, TaskSpec; "
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - base})))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    added = set(json.loads(out.splitlines()[-1]))
    assert not added & set(HEAVY), added & set(HEAVY)


def test_quick_reference_import_paths_resolve():
    code = (
        "from utils.training.engine.trainer import Trainer; "
        "from utils.training.training_config import TrainingConfig, TrainingConfigBuilder; "
        "from utils.training.task_spec import TaskSpec; "
        "import trainforge; assert Trainer is trainforge.Trainer and TaskSpec is trainforge.TaskSpec"
    )
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
