"""The SQLite job queue: priorities, atomic claims, leases, heartbeats, retries, cancel, in-process workers."""

from __future__ import annotations

import threading
import time

from trainforge.jobs import JobFailed, JobQueue, register_handler, run_worker


def test_claims_follow_priority_then_age_and_each_job_is_claimed_once(tmp_path):
    q = JobQueue(tmp_path / "q.db")
    ids = [q.submit("train", {"i": i}, priority=i % 3) for i in range(60)]
    claimed: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (job := q.claim(name)) is not None:
            with lock:
                claimed.append(job.id)
            q.complete(job.id, name, {"ok": True})

    threads = [threading.Thread(target=worker, args=(f"w{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == ids  # every job exactly once
    assert q.counts()["done"] == 60
    q2 = JobQueue(tmp_path / "q2.db")
    low, high, mid = q2.submit("a", {}, priority=0), q2.submit("a", {}, priority=5), q2.submit("a", {}, priority=1)
    assert [q2.claim("w").id for _ in range(3)] == [high, mid, low]  # type: ignore[union-attr]


def test_a_dead_workers_job_is_claimed_again_after_its_lease_until_attempts_run_out(tmp_path):
    q = JobQueue(tmp_path / "q.db")
    job_id = q.submit("train", {}, max_attempts=2)
    first = q.claim("dead-worker", lease_s=0.05)
    assert first is not None and first.attempts == 1
    assert q.claim("other", lease_s=0.05) is None  # leased
    time.sleep(0.1)
    again = q.claim("other", lease_s=0.05)
    assert again is not None and again.id == job_id and again.attempts == 2
    assert not q.complete(job_id, "dead-worker", {})  # the old holder's late result is refused
    time.sleep(0.1)
    assert q.claim("third") is None  # both attempts used: failed, not claimed a third time
    job = q.get(job_id)
    assert job is not None and job.status == "failed" and "lease expired" in (job.error or "")


def test_heartbeat_keeps_the_lease_and_cancel_takes_the_job_away(tmp_path):
    q = JobQueue(tmp_path / "q.db")
    job_id = q.submit("train", {})
    assert q.claim("w", lease_s=0.2) is not None
    for _ in range(3):
        time.sleep(0.1)
        assert q.heartbeat(job_id, "w", lease_s=0.2)
    assert q.claim("x") is None
    assert q.cancel(job_id)
    assert not q.heartbeat(job_id, "w")
    assert not q.complete(job_id, "w", {})
    assert q.get(job_id).status == "cancelled"  # type: ignore[union-attr]


def test_failures_are_retried_up_to_the_limit_in_an_in_process_worker(tmp_path):
    calls: list[int] = []

    def flaky(job, ctx):
        calls.append(job.id)
        if job.payload["mode"] == "flaky" and job.attempts < 2:
            raise RuntimeError("transient")
        if job.payload["mode"] == "broken":
            raise JobFailed("bad input", retry=False)
        ctx.progress({"epoch": 1})
        return {"value": job.payload["mode"]}

    register_handler("test-flaky", flaky)
    q = JobQueue(tmp_path / "q.db")
    ok = q.submit("test-flaky", {"mode": "flaky"}, priority=1)
    broken = q.submit("test-flaky", {"mode": "broken"})
    ran = run_worker(tmp_path / "q.db", lease_s=5, log=lambda _: None)  # the notebook's sequential pattern
    assert ran == 3 and calls == [ok, ok, broken]
    assert q.get(ok).status == "done" and q.get(ok).result == {"value": "flaky"}  # type: ignore[union-attr]
    b = q.get(broken)
    assert b is not None and b.status == "failed" and b.attempts == 1 and b.error == "bad input"


def test_release_worker_requeues_at_once(tmp_path):
    q = JobQueue(tmp_path / "q.db")
    job_id = q.submit("train", {}, key="k")
    assert q.submit("train", {}, key="k") == job_id  # idempotent by key
    q.claim("host:1", lease_s=3600)
    assert q.release_worker("host:1", "worker died") == [job_id]
    job = q.claim("host:2")
    assert job is not None and job.attempts == 2 and "worker died" in (job.error or "")


def test_a_corrupt_job_row_is_failed_and_skipped_while_two_workers_finish_the_others_once(tmp_path, capsys):
    import sqlite3

    from trainforge.cli.main import main

    ran: list[int] = []
    lock = threading.Lock()

    def echo(job, ctx):
        with lock:
            ran.append(job.id)
        time.sleep(0.02)
        return {"n": job.payload["n"]}

    register_handler("test-echo", echo)
    path = tmp_path / "q.db"
    q = JobQueue(path)
    ids = [q.submit("test-echo", {"n": i}) for i in range(8)]
    shape = q.submit("sweep-trial", {"trial": "x"})  # valid JSON, not a sweep-trial payload
    with sqlite3.connect(path) as db:  # a hand-edited / corrupted database
        db.execute("UPDATE jobs SET payload = '{\"n\": 3' WHERE id = ?", (ids[3],))
        db.execute("UPDATE jobs SET payload = '[1, 2]' WHERE id = ?", (ids[5],))
    corrupt = {ids[3], ids[5]}
    assert main(["jobs", "--queue", str(path), "list"]) == 0  # listing does not crash on them
    listing = capsys.readouterr().out
    assert "malformed job: payload: payload: is not valid JSON" in listing
    assert "payload: must be a JSON object, got [1, 2]" in listing

    threads = [threading.Thread(target=run_worker, args=(path,), kwargs={"lease_s": 5, "name": f"w{k}",
                                                                        "log": lambda _: None}) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(ran) == sorted(set(ids) - corrupt)  # every other job exactly once
    for job_id in corrupt:
        job = q.get(job_id)
        assert job is not None and job.status == "failed" and job.attempts == 0
        assert (job.error or "").startswith("malformed job, skipped: payload: ")
    bad_shape = q.get(shape)
    assert bad_shape is not None and bad_shape.status == "failed" and bad_shape.attempts == 1  # not retried
    assert (bad_shape.error or "").startswith("malformed sweep-trial payload (KeyError: 'sweep')")
    assert main(["jobs", "--queue", str(path), "list"]) == 0
    listing = capsys.readouterr().out
    assert listing.count("malformed job, skipped: payload:") == 2 and listing.count(" done ") == 6


def test_concurrent_sweep_trial_submissions_get_distinct_numbers_from_the_store(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from tests.sweeps.sweep_helpers import write_sweep
    from trainforge.sweeps import SweepStore, load_sweep

    write_sweep(Path("sweep.yaml"))
    spec = load_sweep("sweep.yaml")
    store = SweepStore(spec.output_dir)
    store.start(spec)
    assert store.fill(spec, ahead=3) == 3  # the sweep's own trials 0, 1, 2 (queued lazily, 3 so far)
    cmd = [sys.executable, "-m", "trainforge", "jobs", "--queue", "q.db", "submit", "sweep-trial", "--sweep",
           "sweep.yaml", "--params", "learning_rate=0.003"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    submitted = JobQueue("q.db").list()
    numbers = sorted(job.payload["trial"] for job in submitted)
    assert numbers == [3, 4]  # distinct, and distinct from the sweep's own 0..2
    assert store.fill(spec, ahead=10) == 1  # the sweep's 4th trial draws the next free number
    own = sorted(job.payload["trial"] for job in store.jobs())
    assert own == [0, 1, 2, 5]

    # Many writers at once (threads, each with its own connections): the numbers stay unique.
    got: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(20):
            number = store.allocate_number()
            with lock:
                got.append(number)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(6, 86))


def test_export_jobs_run_the_export_package_with_its_report_and_exit_codes(tmp_path, capsys):
    # The export job runs `trainforge export` through the export package (not the CLI above the queue): a good
    # checkpoint gives a checked bundle and exit code 0; a missing one fails the job, once, with exit code 2.
    import json

    import torch

    from tests.export import export_models as em
    from trainforge import TrainingConfig
    from trainforge.cli.main import main

    model, task = em.lm_model()
    ckpt = tmp_path / "last.pt"
    torch.save({"format_version": 1, "run_name": "run-x", "model": model.state_dict(), "task_spec": task.to_dict(),
                "model_config": model.config.to_dict(), "training_config": TrainingConfig().to_dict()}, ckpt)
    path, out, missing = tmp_path / "q.db", tmp_path / "bundle", tmp_path / "nope.pt"
    argv = [str(ckpt), "--formats", "torchscript", "--out", str(out), "--no-latency"]
    assert main(["jobs", "--queue", str(path), "submit", "export", *argv]) == 0
    assert main(["jobs", "--queue", str(path), "submit", "export", str(missing)]) == 0
    capsys.readouterr()
    assert run_worker(path, log=lambda _: None) == 2
    done, failed = JobQueue(path).list()
    assert done.status == "done" and done.result == {"argv": argv, "exit_code": 0}
    assert json.loads((out / "manifest.json").read_text())["ok"] == ["torchscript"]
    ids = torch.randint(0, em.VOCAB, (2, 5))
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(out / "model.torchscript.pt"))(ids), model.eval()(ids),
                                   atol=1e-5, rtol=0)
    assert failed.status == "failed" and failed.attempts == 1  # an export error is not retried
    assert failed.error == f"trainforge export {missing} exited with 2"
    printed = capsys.readouterr()
    assert f"bundle: {out}" in printed.out and "not found" in printed.err  # the export's own report
