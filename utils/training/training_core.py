"""``from utils.training.training_core import TrainingCoordinator`` (needs the ``lightning`` extra).

The class is ``trainforge.lightning.TrainingCoordinator``, re-declared here as an empty subclass so that its
repr is the import path the quick reference shows (``<class 'utils.training.training_core.TrainingCoordinator'>``)
and pickling finds it where it says it lives. No logic lives here.
"""

from trainforge.lightning import TrainingCoordinator as _TrainingCoordinator


class TrainingCoordinator(_TrainingCoordinator):
    __doc__ = _TrainingCoordinator.__doc__


__all__ = ["TrainingCoordinator"]
