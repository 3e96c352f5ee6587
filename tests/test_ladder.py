"""The retry ladder and admission control, reasoned about as data (property tests)."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from sidecar.config.settings import duckdb_limit_for
from sidecar.errors import OutOfMemory, SidecarError, SqlError, WorkerCrashed
from sidecar.jobs.ladder import DEFAULT_LADDER, FIRST_PARTS, MEMORY_FAILURES, Failure, JobState, RetryLadder
from sidecar.jobs.retry import Tried, climb
from sidecar.jobs.types import Attempt
from sidecar.workers.admission import Admission

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
    assert [r.name for r in DEFAULT_LADDER] == ["retry", "grow", "insertion_order", "fewer_threads", "partition", "smaller_limit"]


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


# -- the one retry loop (sidecar.jobs.retry.climb), driven by scripted attempt outcomes ----------

OUTCOMES = st.sampled_from(["ok", *sorted(MEMORY_FAILURES), "WORKER_CRASHED", "SQL_ERROR"])


class Script:
    """Attempts that end as scripted ("ok" after the script runs out). A split attempt reports only
    memory failures to the loop (its steps retried everything else), as the runner's does."""

    def __init__(self, codes: list[str], room: int) -> None:
        self.codes, self.room = codes, room
        self.seen: list[tuple[JobState, str]] = []

    def __call__(self, state: JobState, rung: str, number: int) -> Tried:
        self.seen.append((state, rung))
        code = self.codes[number - 1] if number <= len(self.codes) else "ok"
        record = Attempt(number, rung, state.ceiling, state.duckdb_limit, state.threads, code, 0, 0)
        if code == "ok":
            return Tried(record, "answer")
        if code in MEMORY_FAILURES:
            return Tried(record, None, OutOfMemory("scripted"), Failure(code, 0 if state.parts else self.room))
        if state.parts > 0:
            raise SqlError("scripted: a split attempt's own error is the request's")
        if code == "WORKER_CRASHED":
            return Tried(record, None, WorkerCrashed("scripted"), Failure(code, self.room))
        return Tried(record, None, SqlError("scripted"), None)


@given(
    st.lists(OUTCOMES, min_size=1, max_size=8),
    states,
    st.integers(0, 16384 * MiB),
    st.sampled_from([0, 0, 2, 8, 64]),
    st.booleans(),
)
@settings(max_examples=300)
def test_the_one_loop_escalates_splits_through_the_ladder_and_ends(codes, state, room, up_front, splittable):
    """Whole or split, every attempt comes from the same loop: a split attempt stays split with 4x
    the parts, gets no whole-query rung, at most two split attempts are made, and it always ends."""
    state = dataclasses.replace(state, parts=up_front, splittable=splittable or up_front > 0)
    ladder, script = RetryLadder(), Script(codes, room)
    try:
        result, attempts = climb(ladder, state, script)
    except SidecarError as error:
        result, attempts = None, error.details.get("attempts")
    seen = script.seen
    assert 1 <= len(seen) <= ladder.max_attempts
    if up_front:
        assert seen[0][0].parts == up_front and seen[0][1] == "partition"
    splits = [s for s, _ in seen if s.parts > 0]
    assert len(splits) <= 2, "the partition rung is climbed at most twice"
    for (before, _), (after, rung) in zip(seen, seen[1:]):
        if before.parts > 0:  # after a split attempt failed only more parts can help
            assert rung == "partition" and after.parts == 4 * before.parts
            assert (after.ceiling, after.threads) == (before.ceiling, before.threads)
        elif after.parts > 0:  # a whole attempt escalates to a split one through the partition rung
            assert rung == "partition" and after.parts == FIRST_PARTS and state.idempotent
    if result is not None:
        assert result == "answer" and [a.outcome for a in attempts][-1] == "ok"
        assert all(a.outcome != "ok" for a in attempts[:-1])
    elif attempts is not None:
        assert len(attempts) == len(seen)


whole_reads = st.builds(
    lambda ceiling, extra, **fields: JobState(ceiling=ceiling, most=ceiling + extra, **fields),
    ceiling=st.integers(128 * MiB, 4096 * MiB),
    extra=st.one_of(st.just(0), st.integers(0, 4096 * MiB)),
    threads=st.one_of(st.just(1), st.integers(1, 16)),
    preserve_insertion_order=st.booleans(),
    idempotent=st.just(True),
    exports=st.booleans(),
    holistic=st.booleans(),
    duckdb_limit=st.integers(16 * MiB, 4096 * MiB),
)
"""Whole reads the planner can split (once asked), of every budget, thread count and shape."""


@given(
    whole_reads,
    st.lists(st.sampled_from(sorted(MEMORY_FAILURES)), min_size=5, max_size=5),
    st.one_of(st.just(0), st.integers(0, 8192 * MiB)),
    st.booleans(),
    st.one_of(st.just(6), st.integers(1, 5)),
)
@example(
    JobState(512 * MiB, 512 * MiB, 1, False, True, False, False),  # nothing to adjust whole
    ["OUT_OF_MEMORY"] * 5,
    0,
    False,
    6,  # never succeeds
)
@settings(max_examples=300)
def test_memory_failures_climb_from_whole_to_8_then_32_parts_in_the_one_loop(
    state, failures, room, parsed_up_front, succeeds_at
):
    """A whole read that keeps running out of memory: the whole-query rungs first, then the
    partition rung twice (8, then 32 parts) with the whole attempt's last ceiling and threads, and
    the loop gives up only after both splits failed (the attempt limit keeps two attempts for them).
    Splittability is learnt as the runner does: up front, or by `refine` after the first memory failure."""
    ladder = RetryLadder()
    state = dataclasses.replace(state, splittable=parsed_up_front)
    codes = [*failures[: succeeds_at - 1], "ok"]
    script = Script(codes, room)
    refine = (lambda s: s) if parsed_up_front else (lambda s: dataclasses.replace(s, splittable=True))
    try:
        result, attempts = climb(ladder, state, script, refine=refine)
    except SidecarError as error:
        result, attempts = None, error.details["attempts"]
    parts = [s.parts for s, _ in script.seen]
    whole = parts.count(0)
    assert whole >= 1 and parts == [0] * whole + [8, 32][: len(parts) - whole], parts
    splits = script.seen[whole:]
    assert all(rung == "partition" for _, rung in splits)
    last_whole = script.seen[whole - 1][0]
    assert all((s.ceiling, s.threads) == (last_whole.ceiling, last_whole.threads) for s, _ in splits)
    assert len(attempts) == len(parts) <= ladder.max_attempts
    if result is not None:
        assert len(parts) == succeeds_at and attempts[-1].outcome == "ok"
    else:  # every attempt failed: the loop never gives up before both splits were tried
        assert parts[-2:] == [8, 32], parts
    event(f"parts per attempt: {parts}, {'answered' if result is not None else 'gave up'}")


def splittable_read(parts: int = 0) -> JobState:
    """A read-only SELECT the planner can split, at its whole budget, on one thread."""
    return JobState(
        ceiling=512 * MiB,
        most=512 * MiB,
        threads=1,
        preserve_insertion_order=False,
        idempotent=True,
        exports=False,
        holistic=False,
        splittable=True,
        parts=parts,
    )


def test_a_whole_failure_escalates_to_8_then_32_parts_in_one_loop():
    state = splittable_read()
    script = Script(["OUT_OF_MEMORY", "OUT_OF_MEMORY", "ok"], room=0)
    result, attempts = climb(RetryLadder(), state, script)
    assert result == "answer"
    assert [(s.parts, rung) for s, rung in script.seen] == [(0, "first"), (8, "partition"), (32, "partition")]
    assert [a.outcome for a in attempts] == ["OUT_OF_MEMORY", "OUT_OF_MEMORY", "ok"]


def test_a_named_job_that_fails_split_keeps_its_number_of_parts():
    state = splittable_read(parts=6)
    script = Script(["OUT_OF_MEMORY"], room=0)
    with pytest.raises(SidecarError) as err:
        climb(RetryLadder(), state, script, job_id="nightly")
    assert [(s.parts, rung) for s, rung in script.seen] == [(6, "partition")]
    assert "finished parts are kept" in (err.value.hint or "") and "more than 6 parts" in err.value.hint


# -- the ladder says why: every rung it passed over has a reason, and it never stops while one helps --


@given(codes, states, st.integers(0, 16384 * MiB), st.booleans(), st.lists(st.sampled_from([r.name for r in DEFAULT_LADDER]), max_size=5))
@settings(max_examples=300)
def test_every_rung_passed_over_has_a_reason_and_a_split_is_never_passed_over(code, state, room, splittable, tried):
    state = dataclasses.replace(state, splittable=splittable, unsplittable="" if splittable else "plain_select: no keys")
    ladder, tried = RetryLadder(), tuple(tried)
    step, skipped = ladder.decide(Failure(code, room), state, tried)
    names = [r.name for r in DEFAULT_LADDER]
    chosen = step[0].name if step is not None else None
    assert list(skipped) == names[: names.index(chosen)] if chosen else list(skipped) == names
    assert all(why for why in skipped.values()), skipped
    can_still_split = (
        code in MEMORY_FAILURES
        and state.idempotent
        and splittable
        and tried.count("partition") < 2
        and len(tried) + 1 < ladder.max_attempts
    )
    if can_still_split:
        assert step is not None, f"gave up while the partition rung could help: {skipped}"
    if step is None and code in MEMORY_FAILURES and not splittable and state.idempotent:
        assert "plain_select: no keys" in skipped["partition"]


def test_after_one_failed_attempt_the_hint_says_what_was_tried_and_why_nothing_else_was():
    state = dataclasses.replace(splittable_read(), splittable=False, unsplittable="plain_select: nothing to split by")
    with pytest.raises(SidecarError) as err:
        climb(RetryLadder(), state, Script(["OUT_OF_MEMORY"], room=0))
    hint = err.value.hint or ""
    assert hint.startswith("Tried: first (OUT_OF_MEMORY). Not tried: retry: OUT_OF_MEMORY is not a worker crash;")
    assert "grow: the job is at its budget (512 MiB)" in hint
    assert "fewer_threads: it already runs on one thread" in hint
    assert "partition: the planner cannot split it (plain_select: nothing to split by)" in hint
    (first,) = err.value.details["attempts"]
    assert set(first["skipped"]) == {r.name for r in DEFAULT_LADDER}


def test_a_whole_failure_of_a_splittable_query_is_split_and_the_attempt_says_why_the_rest_were_skipped():
    script = Script(["OUT_OF_MEMORY", "ok"], room=0)
    result, attempts = climb(RetryLadder(), splittable_read(), script)
    assert result == "answer" and [a.rung for a in attempts] == ["first", "partition"]
    assert list(attempts[0].skipped) == ["retry", "grow", "insertion_order", "fewer_threads"]
    assert attempts[1].skipped == {}


def unsplittable_near_ceiling(threads: int) -> JobState:
    """A top-N with a large offset (nothing to split by) at a 250 MB ceiling, as the memory suite asks it."""
    ceiling = 250_000_000
    return dataclasses.replace(
        splittable_read(),
        ceiling=ceiling,
        most=ceiling,
        threads=threads,
        duckdb_limit=duckdb_limit_for(ceiling),
        splittable=False,
        unsplittable="limit_without_aggregate: nothing to split by",
    )


def test_what_cannot_split_and_neared_its_ceiling_gets_a_smaller_duckdb_limit():
    script = Script(["MEMORY_EMERGENCY", "MEMORY_EMERGENCY", "ok"], room=0)
    result, attempts = climb(RetryLadder(), unsplittable_near_ceiling(threads=2), script)
    assert result == "answer"
    assert [(rung, s.threads, s.duckdb_limit) for s, rung in script.seen] == [
        ("first", 2, 125_000_000),
        ("fewer_threads", 1, 125_000_000),
        ("smaller_limit", 1, int(125_000_000 * 2 / 3)),
    ]
    assert attempts[1].skipped["partition"].startswith("the planner cannot split it")


def test_a_smaller_limit_is_not_tried_when_duckdb_ran_out_of_its_own_and_is_cut_twice_at_most():
    with pytest.raises(SidecarError) as err:
        climb(RetryLadder(), unsplittable_near_ceiling(threads=1), Script(["OUT_OF_MEMORY"], room=0))
    assert "smaller_limit: DuckDB ran out of its own limit; a smaller one runs out sooner" in (err.value.hint or "")
    script = Script(["MEMORY_CEILING"] * 4, room=0)
    with pytest.raises(SidecarError) as err:
        climb(RetryLadder(), unsplittable_near_ceiling(threads=1), script)
    assert [rung for _, rung in script.seen] == ["first", "smaller_limit", "smaller_limit"]
    assert "smaller_limit: DuckDB's limit was already cut twice" in (err.value.hint or "")
    holistic = dataclasses.replace(unsplittable_near_ceiling(threads=1), holistic=True)
    step, skipped = RetryLadder().decide(Failure("MEMORY_EMERGENCY"), holistic, ())
    assert step is None and skipped["smaller_limit"].startswith("a holistic aggregate")
