"""One benchmark run: every case through a fresh sidecar and through plain DuckDB, alternating.

A case is (question, size, budget). Each case runs once per side as a warm-up (not counted),
then `repeat` times as sidecar, plain, sidecar, plain, ... so both sides see the same machine
and page cache. Every measurement, failed or not, becomes a row in the results file; a case's
answers are checked against plain DuckDB's (its first fingerprint), and a differing answer is
recorded as WRONG_ANSWER.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from sidecar.bench.suite.data import Dataset, cache_root, prepare
from sidecar.bench.suite.questions import MEMORY_BUDGETS, Question, render_sql
from sidecar.bench.suite.sides import REPO, Measurement, run_plain, run_sidecar
from sidecar.bench.suite.store import ResultRow, ResultStore, RunInfo, git_commit, machine_info, versions
from sidecar.units import duckdb_size

__all__ = ["Arm", "BenchProgress", "Case", "RunContext", "bench_root", "measure", "measure_side", "run_suite"]

log = logging.getLogger(__name__)


class BenchProgress(msgspec.Struct, frozen=True, kw_only=True):
    """A `$/progress` value of `bench.run`: ProgressValue's fields plus where the run is."""

    phase: str
    """`starting` while data is written, `running` while a question runs."""
    percent: float
    elapsed_ms: int
    rss_bytes: int = 0
    buffer_bytes: int = 0
    spill_bytes: int = 0
    question: int
    """The case running now, counted from 1, of `questions`."""
    questions: int
    name: str
    size: str
    side: str
    """`sidecar`, `plain` or `data`."""
    repeat: int
    """0 for the warm-up, then 1..repeat."""


@dataclass(frozen=True)
class Case:
    question: Question
    size_bytes: int
    size_text: str
    budget_bytes: int | None


@dataclass
class RunContext:
    """What a run needs from its caller: where things go, the settings, and how to report."""

    state_directory: Path
    temp_directory: Path
    threads: int
    budget_bytes: int | None
    extra_settings: dict[str, Any]
    preserve_insertion_order: bool = False
    """The sidecar's (its `auto` is false); the plain side runs with the same, so the two differ by
    the sidecar alone (DuckDB's own default is true)."""
    seed: int = 0
    timeout_s: float = 600.0
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    progress: Callable[[BenchProgress], None] = lambda p: None
    cancelled: Callable[[], bool] = lambda: False


def bench_root(state_directory: Path) -> Path:
    return state_directory / "bench"


def cases_for(
    questions: list[Question], sizes: list[tuple[str, int]], memory: bool, budget: int | None
) -> list[Case]:
    """Sizes outermost; the `memory` suite sweeps MEMORY_BUDGETS per question, others use `budget`."""
    cases: list[Case] = []
    for text, size in sizes:
        for q in questions:
            budgets = [None if f is None else int(f * size) for f in MEMORY_BUDGETS] if memory else [budget]
            cases.extend(Case(q, size, text, b) for b in budgets)
    return cases


def _start_subject(ctx: RunContext) -> Any:
    from sidecar.client import SidecarProcess

    root = bench_root(ctx.state_directory)
    env = dict(ctx.env, BMAD_DATA_STATE_DIR=str(root / f"subject-{os.getpid()}"), BMAD_DATA_TEMP_DIRECTORY=str(ctx.temp_directory),
               BMAD_DATA_ALLOWED_DIRECTORIES=os.pathsep.join([str(root), str(ctx.temp_directory)]),
               BMAD_DATA_LOG_LEVEL="warning")  # fmt: skip
    sc = SidecarProcess(env=env, cwd=REPO)
    sc.request("initialize", {"client": {"name": "bench.run"}})
    return sc


def _settings(ctx: RunContext, budget: int | None) -> dict[str, Any]:
    settings = dict(ctx.extra_settings, threads=ctx.threads)
    settings.setdefault("preserve_insertion_order", ctx.preserve_insertion_order)
    settings.pop("memory_limit", None)
    if budget is not None:
        settings["memory_limit"] = duckdb_size(budget)
    return settings


def _check_answers(rows: list[ResultRow]) -> list[ResultRow]:
    """Mark WRONG_ANSWER every ok run whose fingerprint differs from plain DuckDB's first (else the sidecar's first)."""
    ok = [r for r in rows if r.m.status == "ok"]
    reference = next((r.m.fingerprint for r in ok if r.m.side == "plain"), ok[0].m.fingerprint if ok else "")
    for r in ok:
        if r.m.fingerprint != reference:
            r.m.status, r.m.error = (
                "WRONG_ANSWER",
                f"answer {r.m.fingerprint} differs from plain DuckDB's {reference}",
            )
    return rows


@dataclass(frozen=True)
class Arm:
    """Settings to measure and the run their rows go to (`rerun`: the comparison re-measuring it, else None)."""

    ctx: RunContext
    run_id: str
    rerun: str | None = None


def measure(
    store: ResultStore, arms: list[Arm], cases: list[Case], repeat: int, sides: tuple[str, ...]
) -> bool:
    """Measure `cases` for every arm and side, alternating them within each repeat (after one warm-up
    of each); False when cancelled part way (what was measured is kept)."""
    ctx = arms[0].ctx
    root = bench_root(ctx.state_directory)
    out_dir = root / f"out-{os.getpid()}"
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx.temp_directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    steps = len(cases) * len(arms) * len(sides) * (repeat + 1)
    done = 0

    def report(i: int, case: Case, side: str, rep: int) -> None:
        ctx.progress(BenchProgress(phase="starting" if side == "data" else "running",
                                   percent=round(100 * done / max(1, steps), 1),
                                   elapsed_ms=int((time.monotonic() - started) * 1000), question=i + 1,
                                   questions=len(cases), name=case.question.name, size=case.size_text, side=side,
                                   repeat=rep))  # fmt: skip

    sc = _start_subject(ctx)
    try:
        for i, case in enumerate(cases):
            dataset = None
            if case.question.dataset:
                report(i, case, "data", 0)
                dataset = prepare(Dataset(cache_root(ctx.state_directory), case.question.dataset, case.size_bytes,
                                          ctx.seed), ctx.cancelled)  # fmt: skip
            if ctx.cancelled():
                return False
            rows: dict[int, list[ResultRow]] = {k: [] for k in range(len(arms))}
            for rep in range(repeat + 1):
                for k, arm in enumerate(arms):
                    for side in sides:
                        report(i, case, side, rep)
                        out = out_dir / f"{side}.parquet"
                        sql = render_sql(case.question, dataset, case.size_bytes, str(out))
                        m = measure_side(arm.ctx, sc, side, sql, case.budget_bytes)
                        out.unlink(missing_ok=True)
                        done += 1
                        if m.status == "SIDECAR_EXITED":
                            sc = _restart(sc, ctx)
                        if m.status == "CANCELLED" or ctx.cancelled():
                            return False
                        if rep > 0:
                            rows[k].append(ResultRow(question=case.question.name, cls=case.question.cls,
                                                     size_bytes=case.size_bytes,
                                                     input_bytes=dataset.input_bytes if dataset else 0,
                                                     budget_bytes=case.budget_bytes, repeat=rep, rerun=arm.rerun,
                                                     m=m))  # fmt: skip
            for k, arm in enumerate(arms):
                store.add(arm.run_id, _check_answers(rows[k]))
        return True
    finally:
        try:
            sc.close(timeout=30)
        except subprocess.TimeoutExpired:  # close() killed it; nothing of ours is lost
            log.warning("the benchmarked sidecar did not exit within 30 s and was killed")
        shutil.rmtree(out_dir, ignore_errors=True)
        shutil.rmtree(root / f"subject-{os.getpid()}", ignore_errors=True)


def measure_side(ctx: RunContext, sc: Any, side: str, sql: str, budget: int | None) -> Measurement:
    """One run of `sql` on one side: `query.run` through the sidecar `sc`, or plain DuckDB in a fresh
    process, both with the run's threads, budget and preserve_insertion_order."""
    if side == "sidecar":
        return run_sidecar(sc, sql, _settings(ctx, budget), timeout_s=ctx.timeout_s, cancelled=ctx.cancelled)
    preserve = bool(ctx.extra_settings.get("preserve_insertion_order", ctx.preserve_insertion_order))
    return run_plain(sql, threads=ctx.threads, budget=budget, temp_directory=str(ctx.temp_directory / "plain"),
                     timeout_s=ctx.timeout_s, cancelled=ctx.cancelled, preserve_insertion_order=preserve)  # fmt: skip


def _restart(sc: Any, ctx: RunContext) -> Any:
    log.warning(
        "the benchmarked sidecar exited; starting a new one. stderr tail: %s", list(sc.stderr_tail)[-5:]
    )
    sc.kill()
    return _start_subject(ctx)


def new_run(
    store: ResultStore, ctx: RunContext, *, suite: str, sizes: list[str], repeat: int, label: str | None
) -> RunInfo:
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    info = RunInfo(run_id=run_id, label=label, started_at=time.strftime("%Y-%m-%dT%H:%M:%S"), suite=suite,
                   sizes=sizes, repeat=repeat, settings={**_settings(ctx, ctx.budget_bytes), "seed": ctx.seed},
                   machine=machine_info(), versions=versions(), git_commit=git_commit(REPO), status="running")  # fmt: skip
    store.start(info)
    return info


def run_suite(
    ctx: RunContext, store: ResultStore, *, suite: str, questions: list[Question], sizes: list[tuple[str, int]],
    repeat: int, label: str | None,
) -> RunInfo:  # fmt: skip
    """Run the suite and record it; the run's status says whether it finished, was cancelled or failed."""
    info = new_run(store, ctx, suite=suite, sizes=[t for t, _ in sizes], repeat=repeat, label=label)
    status = "failed"
    try:
        cases = cases_for(questions, sizes, suite == "memory", ctx.budget_bytes)
        finished = measure(store, [Arm(ctx, info.run_id)], cases, repeat, ("sidecar", "plain"))
        status = "done" if finished else "cancelled"
    finally:
        store.finish(info.run_id, status)
    return msgspec.structs.replace(info, status=status)
