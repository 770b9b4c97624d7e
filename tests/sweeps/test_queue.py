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
