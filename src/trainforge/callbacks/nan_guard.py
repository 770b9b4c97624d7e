"""Former home of the NaN/Inf guard, kept so that its public names still import.

The guard is not a callback: it decides whether an optimizer step happens, so it lives in the trainer as
:class:`trainforge.trainer.guard.StepGuard` (the one owner of skips, rollbacks, the learning-rate scale and the
stop). Callbacks observe it through the results (``skipped_steps``, ``skipped_step_records``, ``nan_rollbacks``).
"""

from trainforge.trainer.guard import NonFiniteTrainingError, clone_tree, decides_on_device, total_grad_norm

__all__ = ["NonFiniteTrainingError", "clone_tree", "decides_on_device", "total_grad_norm"]
