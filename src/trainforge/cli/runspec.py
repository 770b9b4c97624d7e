"""Where the run-spec builder lived before it moved below the CLI, to :mod:`trainforge.runspec` (queue jobs and
sweeps use it and must not import the CLI). Older imports from here keep working."""

from trainforge.runspec import build_model_from_spec, import_function, train_spec
from trainforge.runspec.tokens import train_on_tokens

__all__ = ["build_model_from_spec", "import_function", "train_on_tokens", "train_spec"]
