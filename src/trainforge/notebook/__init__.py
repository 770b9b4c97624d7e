"""Notebook guardrails: what a Jupyter/Colab kernel can and cannot run (see ``guardrails``)."""

from trainforge.notebook.guardrails import (
    ALLOW_ENV,
    check_not_data_parallel,
    check_notebook_strategy,
    in_notebook,
    is_multiprocess,
    notebook_device,
)

__all__ = [
    "ALLOW_ENV",
    "check_not_data_parallel",
    "check_notebook_strategy",
    "in_notebook",
    "is_multiprocess",
    "notebook_device",
]
