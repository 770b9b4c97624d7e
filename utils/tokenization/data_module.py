"""``from utils.tokenization.data_module import SimpleDataModule`` (needs the ``lightning`` extra)."""

from trainforge.data.lightning_module import SimpleDataModule

__all__ = ["SimpleDataModule"]
