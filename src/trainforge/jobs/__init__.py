"""A persistent SQLite job queue: submit ``train``, ``sweep-trial`` and ``export`` jobs with a priority; workers
claim atomically under a lease, heartbeat, retry with a limit. ``trainforge jobs submit | list | worker | cancel``.

Sequential use in a notebook is the same queue run in-process::

    from trainforge.jobs import JobQueue, run_worker
    q = JobQueue("jobs.db")
    for lr in (1e-3, 3e-3):
        q.submit("train", {"preset": "tiny", "overrides": [f"learning_rate={lr}"]})
    run_worker("jobs.db")              # runs them one after another, here
"""

from trainforge.jobs.queue import FINAL, STATUSES, Job, JobQueue, worker_id
from trainforge.jobs.worker import HANDLERS, JobContext, JobFailed, register_handler, run_job, run_worker

__all__ = [
    "FINAL",
    "HANDLERS",
    "STATUSES",
    "Job",
    "JobContext",
    "JobFailed",
    "JobQueue",
    "register_handler",
    "run_job",
    "run_worker",
    "worker_id",
]
