"""The retry ladder and admission control, reasoned about as data (property tests)."""

from __future__ import annotations

import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.workers.admission import Admission
from sidecar.workers.ladder import DEFAULT_LADDER, MEMORY_FAILURES, Failure, JobState, RetryLadder

MiB = 1024**2

codes = st.sampled_from(sorted(MEMORY_FAILURES | {"WORKER_CRASHED", "SPILL_LIMIT", "TIMEOUT", "SQL_ERROR"}))
states = st.builds(
    JobState,
    ceiling=st.integers(128 * MiB, 8192 * MiB),
    most=st.integers(128 * MiB, 16384 * MiB),
    threads=st.integers(1, 16),
    preserve_insertion_order=st.booleans(),
    idempotent=st.booleans(),
    exports=st.booleans(),
    holistic=st.booleans(),
    duckdb_limit=st.integers(16 * MiB, 8192 * MiB),
).filter(lambda s: s.ceiling <= s.most)


@given(codes, states, st.integers(0, 16384 * MiB))
def test_every_step_stays_within_the_jobs_budget_and_the_machines_room(code, state, room):
    step = RetryLadder().next(Failure(code, room), state, ())
    if step is None:
        return
    rung, after = step
    assert after.ceiling <= max(state.most, state.ceiling)
    assert after.ceiling <= state.ceiling + room
    assert after.threads >= 1
    if rung.name != "retry":
        assert after != state, "a rung must change something"
    if code not in MEMORY_FAILURES:
        assert rung.name == "retry"  # only memory failures climb past a plain retry
    if not state.idempotent:
        raise AssertionError("work that is not safe to repeat is never retried")


@given(codes, states, st.integers(0, 16384 * MiB))
@settings(max_examples=200)
def test_the_ladder_always_ends(code, state, room):
    ladder, tried = RetryLadder(), ()
    for _ in range(ladder.max_attempts + 1):
        step = ladder.next(Failure(code, room), state, tried)
        if step is None:
            return
        rung, state = step
        tried += (rung.name,)
    raise AssertionError(f"the ladder kept going: {tried}")


def test_holistic_shapes_skip_fewer_threads_and_get_split_advice():
    state = JobState(
        ceiling=512 * MiB,
        most=512 * MiB,
        threads=4,
        preserve_insertion_order=False,
        idempotent=True,
        exports=False,
        holistic=True,
        duckdb_limit=256 * MiB,
    )
    failure = Failure("OUT_OF_MEMORY", machine_room=0)
    assert RetryLadder().next(failure, state, ()) is None
    assert "split" in RetryLadder().advice(failure, state)
    plain = JobState(**{**state.__dict__, "holistic": False})
    rung, after = RetryLadder().next(failure, plain, ())
    assert rung.name == "fewer_threads" and after.threads == 2


def test_grow_comes_before_the_cheap_rungs_when_there_is_room():
    state = JobState(
        ceiling=512 * MiB,
        most=4096 * MiB,
        threads=4,
        preserve_insertion_order=True,
        idempotent=True,
        exports=True,
        holistic=False,
        duckdb_limit=256 * MiB,
    )
    rung, after = RetryLadder().next(Failure("MEMORY_CEILING", machine_room=3000 * MiB), state, ())
    assert rung.name == "grow" and 512 * MiB < after.ceiling <= 4096 * MiB
    assert [r.name for r in DEFAULT_LADDER] == ["retry", "grow", "insertion_order", "fewer_threads", "partition"]


def test_a_crash_is_retried_once():
    state = JobState(
        ceiling=512 * MiB,
        most=512 * MiB,
        threads=2,
        preserve_insertion_order=False,
        idempotent=True,
        exports=False,
        holistic=False,
    )
    crash = Failure("WORKER_CRASHED")
    assert RetryLadder().next(crash, state, ())[0].name == "retry"
    assert RetryLadder().next(crash, state, ("retry",)) is None


@given(st.lists(st.integers(1, 600), min_size=1, max_size=12), st.integers(1, 4))
@settings(max_examples=30, deadline=None)
def test_admission_never_oversubscribes_and_serves_everyone(sizes, max_jobs):
    admission = Admission(machine_budget=1000, max_jobs=max_jobs)
    peak, lock, done = [0], threading.Lock(), []

    def job(size: int) -> None:
        reservation = admission.admit(size, size, cancelled=lambda: False)
        with lock:
            peak[0] = max(peak[0], admission.reserved)
            assert len(admission.running) <= max_jobs
        time.sleep(0.002)
        admission.release(reservation)
        done.append(size)

    threads = [threading.Thread(target=job, args=(s,)) for s in sizes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(done) == sorted(sizes)
    assert peak[0] <= 1000


def test_grow_only_when_nobody_waits():
    admission = Admission(machine_budget=1000, max_jobs=2)
    first = admission.admit(400, 1000, cancelled=lambda: False)
    assert admission.grow(first, 800) == 800
    admission.release(first)
    first = admission.admit(700, 1000, cancelled=lambda: False)
    blocker = []
    t = threading.Thread(
        target=lambda: blocker.append(admission.admit(400, 400, cancelled=lambda: len(blocker) > 0))
    )
    t.start()
    time.sleep(0.2)
    assert admission.waiting() == 1
    assert admission.grow(first, 900) == 700  # someone waits: no growth
    blocker.append("stop")  # the waiter gives up
    t.join(timeout=5)
    assert admission.waiting() == 0
    assert admission.grow(first, 900) == 900
