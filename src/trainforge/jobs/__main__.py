"""``python -m trainforge.jobs QUEUE [--lease S] [--single-thread] [--forever]``: one queue worker process."""

from trainforge.jobs.worker import main

if __name__ == "__main__":
    raise SystemExit(main())
