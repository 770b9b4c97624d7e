"""Lightning integration (``lightning`` extra): ``TrainingCoordinator`` trains through a real ``lightning.Trainer``.

Importing this package imports Lightning; ``import trainforge`` does not.
"""

from trainforge.lightning.coordinator import TrainingCoordinator
from trainforge.lightning.module import TaskLightningModule

__all__ = ["TaskLightningModule", "TrainingCoordinator"]
