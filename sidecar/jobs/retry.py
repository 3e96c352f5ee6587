"""The one retry loop: attempt, and after a failure let the ladder say what the next attempt is.

An attempt runs the job whole (`state.parts == 0`) or split in `state.parts` parts; the ladder
(`sidecar.jobs.ladder`) decides both, so a split chosen up front (the estimate, an explicit
`partition.parts`) and one chosen after a memory failure climb the same way: 8 parts, then 4x
as many, within the same attempt limit. `climb` takes the attempt as a function, so the loop
is reasoned about as data (tests/test_ladder.py drives it with scripted failures).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NamedTuple

import msgspec

from sidecar.config.settings import duckdb_limit_for
from sidecar.errors import InternalError, SidecarError
from sidecar.jobs.ladder import MEMORY_FAILURES, Failure, JobState, RetryLadder
from sidecar.jobs.types import Attempt

__all__ = ["Tried", "climb", "final_error", "tried_text"]

log = logging.getLogger(__name__)

KEEPS_PARTS = "a named job keeps its finished parts for a resume, so it is not re-split with other parts"


class Tried(NamedTuple):
    """How one attempt ended: its record, and its result or its error (with the ladder's `Failure`
    when a retry may rescue it; None for an error no retry helps)."""

    attempt: Attempt
    result: Any = None
    error: SidecarError | None = None
    failure: Failure | None = None


AttemptFn = Callable[[JobState, str, int], Tried]
"""Runs one attempt under `state`, recorded with its rung and number."""


def climb(
    ladder: RetryLadder,
    state: JobState,
    attempt: AttemptFn,
    *,
    refine: Callable[[JobState], JobState] = lambda s: s,
    job_id: str | None = None,
    on_retry: Callable[[str, str], None] | None = None,
) -> tuple[Any, list[Attempt]]:
    """Attempt until one succeeds: its result and every attempt made; or raise the last error.

    `state.parts > 0` makes the first attempt a split one (rung "partition"). `refine` fills in
    what is parsed only after the first memory failure (holistic, splittable). A named job
    (`job_id`) that fails split keeps its parts for a resume, so it is not re-split with a
    different number of parts. `on_retry(rung, why)` is told before each retry.
    """
    attempts: list[Attempt] = []
    tried: tuple[str, ...] = ("partition",) if state.parts > 0 else ()
    rung = "partition" if state.parts > 0 else "first"
    refined = False
    while True:
        outcome = attempt(state, rung, len(attempts) + 1)
        attempts.append(outcome.attempt)
        if outcome.error is None:
            return outcome.result, attempts
        failure = outcome.failure
        if failure is not None and failure.code in MEMORY_FAILURES and not refined:
            state, refined = refine(state), True
        if failure is not None and state.parts > 0 and job_id is not None:
            attempts[-1] = _skipping(attempts[-1], {"partition": KEEPS_PARTS})
            final = final_error(ladder, outcome.error, failure, state, attempts)
            final.hint = (final.hint or "") + (
                f" The job's finished parts are kept: re-send the request to resume them, or `jobs.cancel` "
                f"'{job_id}' and ask for more than {state.parts} parts with `partition: {{parts: N}}`."
            )
            raise final
        step, skipped = ladder.decide(failure, state, tried) if failure is not None else (None, {})
        attempts[-1] = _skipping(attempts[-1], skipped)
        if step is None:
            raise final_error(ladder, outcome.error, failure, state, attempts)
        next_rung, state = step
        state = replace(state, duckdb_limit=duckdb_limit_for(state.ceiling, state.duckdb_share))
        tried += (next_rung.name,)
        rung = next_rung.name
        if on_retry is not None:
            on_retry(rung, next_rung.why)


def final_error(
    ladder: RetryLadder,
    error: SidecarError | None,
    failure: Failure | None,
    state: JobState,
    attempts: list[Attempt],
) -> SidecarError:
    """The error the request ends with: the last attempt's, with what was tried and what may help."""
    if error is None:
        error = InternalError("the job failed without an error")
    if failure is not None or len(attempts) > 1:  # what the supervisor tried, when it tried anything
        error.details["attempts"] = msgspec.to_builtins(attempts)
    if failure is not None and failure.code in MEMORY_FAILURES:
        advice = ladder.advice(failure, state)
        error.hint = f"{tried_text(attempts)} {advice[:1].upper()}{advice[1:]}"
    return error


def tried_text(attempts: list[Attempt]) -> str:
    """What was tried, and why the rest of the ladder was not, for the final error's hint.

    >>> a = Attempt(1, "first", 1, 1, 1, "OUT_OF_MEMORY", 0, 0, skipped={"grow": "no room"})
    >>> tried_text([a])
    'Tried: first (OUT_OF_MEMORY). Not tried: grow: no room.'
    """
    tried = ", ".join(f"{a.rung} ({a.outcome})" for a in attempts)
    passed = attempts[-1].skipped if attempts else {}
    rest = "; ".join(f"{rung}: {why}" for rung, why in passed.items())
    return f"Tried: {tried}." + (f" Not tried: {rest}." if rest else "")


def _skipping(attempt: Attempt, skipped: dict[str, str]) -> Attempt:
    return msgspec.structs.replace(attempt, skipped=skipped) if skipped else attempt
