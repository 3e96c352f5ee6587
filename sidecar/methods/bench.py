"""`bench.run`, `bench.compare`, `bench.list`: benchmarks with baselines (see docs/performance/benchmarks.md).

A run measures every question through a fresh `python -m sidecar` (its `query.run`, over its
protocol) and through plain DuckDB in fresh processes, so it runs on the dispatcher's thread
pool like any work method and never blocks other requests; it sends `$/progress` (question i of
n, size, side) and stops at `$/cancelRequest`, keeping what it measured.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from sidecar.bench.suite import render
from sidecar.bench.suite.compare import CaseVerdict, Rule, judge
from sidecar.bench.suite.questions import DEFAULT_SIZES, question_named, questions_for
from sidecar.bench.suite.runner import Arm, BenchProgress, Case, RunContext, bench_root, measure, run_suite
from sidecar.bench.suite.sides import REPO
from sidecar.bench.suite.store import ResultStore, RunInfo, SettingValue, git_commit, machine_info, versions
from sidecar.bench.suite.summary import CaseSummary, summarize
from sidecar.engine.outputs import require_inside
from sidecar.errors import InputError, InvalidParams
from sidecar.methods import registry
from sidecar.protocol.dispatcher import Call
from sidecar.units import parse_size

__all__ = ["BenchCompareParams", "BenchCompareResult", "BenchListParams", "BenchRunParams", "BenchRunResult"]

Label = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
_running = threading.Lock()
RERUN_REPEAT = 5
"""Suspects are measured again at least this often per setting: 5 against 5 lets the rank test reach p < 0.05."""


class ReportSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path: str
    """Where to write it, inside the allowed directories; written atomically."""
    format: Literal["md", "html", "json"] | None = None
    """Default: from the extension (.md, .html/.htm, .json)."""


class ReportInfo(msgspec.Struct, frozen=True):
    path: str
    format: str
    charts: int
    """Charts drawn (0 without matplotlib, the optional `bench` extra)."""
    warnings: list[str] = []


class BenchRunParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    suite: str = "smoke"
    """smoke | query | load | memory | tpch | all."""
    sizes: list[str] | None = None
    """Input sizes as size strings (["1MB", "100MB"]); default: the suite's (smoke: 1MB; others 1MB, 100MB, 1GB)."""
    repeat: Annotated[int, msgspec.Meta(ge=1, le=50)] = 3
    """Counted runs per question and side, after one warm-up run each."""
    settings: dict[str, SettingValue] | None = None
    """As `query.run`'s: threads and memory_limit apply to both sides, the rest to the sidecar."""
    label: Label | None = None
    """A name to compare against later (the newest finished run with it is meant)."""
    questions: list[str] | None = None
    """Only these questions of the suite."""
    seed: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0
    """The data's seed (data is cached per dataset, size and seed)."""
    timeout_ms: Annotated[int, msgspec.Meta(gt=0)] = 600_000
    """Per measured run; a run past it is recorded as TIMEOUT."""
    report: ReportSpec | None = None
    """Also write a report of the run (Markdown with charts beside it, self-contained HTML, or JSON)."""


class BenchRunResult(msgspec.Struct, frozen=True):
    run: RunInfo
    cases: list[CaseSummary]
    failures: int
    """Cases where a side failed (recorded with its error code, never dropped)."""
    wrong_answers: int
    """Cases whose answer fingerprints disagree across sides or runs."""
    results_file: str
    report: ReportInfo | None = None


class BenchCompareParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    baseline: str
    """A run id or a label (its newest finished run)."""
    candidate: str | None = None
    """A run id or a label; default: the newest finished run."""
    rule: Rule = Rule()
    rerun: bool = True
    """Measure suspected regressions again before flagging (when the candidate is this code on this machine)."""
    allow_other_machine: bool = False
    """Compare runs of different machine fingerprints (the answer says so)."""
    report: ReportSpec | None = None
    """Also write a report of the candidate run and this comparison."""


class BenchCompareResult(msgspec.Struct, frozen=True):
    baseline: RunInfo
    candidate: RunInfo
    same_machine: bool
    rule: Rule
    cases: list[CaseVerdict]
    regressions: int
    """Cases judged `regression` or `newly_failing`."""
    improvements: int
    rerun: list[str]
    """The suspects measured again (question@size)."""
    notes: list[str]
    report: ReportInfo | None = None


class BenchListParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    label: Label | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50


class BenchListResult(msgspec.Struct, frozen=True):
    runs: list[RunInfo]
    """Newest first."""
    results_file: str


def _store(call: Call) -> ResultStore:
    return ResultStore(bench_root(Path(call.session.settings.state_directory)) / "results.duckdb")


def _sizes(texts: list[str]) -> list[tuple[str, int]]:
    sizes = []
    for text in texts:
        try:
            sizes.append((text, parse_size(text)))
        except ValueError as exc:
            raise InvalidParams(
                f"invalid size {text!r}: {exc}", hint='Sizes are like "1MB", "100MB", "1GB".'
            ) from exc
        if sizes[-1][1] < 100_000:
            raise InvalidParams(
                f"size {text!r} is below 100KB", hint="The smallest benchmark size is 100KB; try 1MB."
            )
    return sizes


def _context(call: Call, settings: dict[str, SettingValue] | None, seed: int, timeout_ms: int) -> RunContext:
    session = call.session
    resolved = session.settings_for(settings)
    given = dict(settings or {})
    return RunContext(
        state_directory=Path(resolved.state_directory),
        temp_directory=Path(resolved.temp_directory) / "bench",
        threads=resolved.threads,
        budget_bytes=resolved.memory_budget_bytes,
        extra_settings={k: v for k, v in given.items() if k not in ("threads", "memory_limit")},
        preserve_insertion_order=resolved.preserve_insertion_order,
        seed=seed,
        timeout_s=timeout_ms / 1000,
        env=dict(session.env),
        progress=lambda value: _progress(call, value),
        cancelled=call.cancel_event.is_set,
    )


def _progress(call: Call, value: BenchProgress) -> None:
    if call.wants_progress:
        # BenchProgress carries every field of ProgressValue plus where the run is (docs/protocol.md).
        call.progress(value)  # type: ignore[arg-type]


class _OneAtATime:
    """One benchmark per sidecar at a time: two would measure each other."""

    def __enter__(self) -> None:
        if not _running.acquire(blocking=False):
            raise InvalidParams("a benchmark is running already in this sidecar",
                                hint="Wait for it to finish, or cancel it ($/cancelRequest), then retry.")  # fmt: skip

    def __exit__(self, *exc: object) -> None:
        _running.release()


@registry.method("bench.run", params=BenchRunParams, result=BenchRunResult)
def run(call: Call, p: BenchRunParams) -> BenchRunResult:
    """Run a benchmark suite through the sidecar and plain DuckDB side by side, and record it."""
    call.session.require()
    questions = questions_for(p.suite, p.questions)
    sizes = _sizes(p.sizes if p.sizes is not None else list(DEFAULT_SIZES[p.suite]))
    if p.report is not None:
        _report_target(call, p.report)  # a report that cannot be written is refused before the run
    store = _store(call)
    with _OneAtATime():
        ctx = _context(call, p.settings, p.seed, p.timeout_ms)
        info = run_suite(
            ctx, store, suite=p.suite, questions=questions, sizes=sizes, repeat=p.repeat, label=p.label
        )
    if info.status == "cancelled":
        raise call.cancelled_error()
    cases = summarize(store.results(info.run_id))
    failures = sum(1 for c in cases if c.sidecar.status != "ok" or c.plain.status != "ok")
    wrong = sum(1 for c in cases if not c.answers_agree)
    result = BenchRunResult(info, cases, failures, wrong, str(store.path))
    if p.report is None:
        return result
    return msgspec.structs.replace(result, report=_write_report(call, p.report, info, cases, None, result))


def _why_not_now(run: RunInfo) -> str | None:
    """Why `run`'s settings cannot be measured again now, or None when this is its code and machine."""
    if run.machine.fingerprint != machine_info().fingerprint:
        return "measured on another machine"
    if run.versions != versions() or run.git_commit != git_commit(REPO):
        return "measured with other code or versions"
    return None


def _key(v: CaseVerdict | dict[str, Any]) -> tuple[str, int, int | None]:
    if isinstance(v, dict):
        return (v["question"], v["size_bytes"], v["budget_bytes"])
    return (v.question, v.size_bytes, v.budget_bytes)


def _arm(call: Call, run: RunInfo, compare_id: str) -> Arm:
    settings = {k: v for k, v in run.settings.items() if k != "seed"}
    return Arm(_context(call, settings, int(run.settings.get("seed", 0)), 600_000), run.run_id, compare_id)


def _remeasure(call: Call, store: ResultStore, base: RunInfo, cand: RunInfo, suspects: list[CaseVerdict],
               notes: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:  # fmt: skip
    """Measure the suspects again; the (baseline, candidate) rows to judge them on, or None when it cannot be done.

    When the baseline is this code too (a settings change), both settings are measured again,
    alternating, so a machine that got busier since the baseline slows both alike.
    """
    why_not = _why_not_now(cand)
    if why_not is not None:
        notes.append(f"suspects not re-measured: the candidate was {why_not}")
        return None
    compare_id = "cmp-" + secrets.token_hex(4)
    arms = [_arm(call, cand, compare_id)]
    if _why_not_now(base) is None:
        arms.insert(0, _arm(call, base, compare_id))
    size_text = {s: t for t, s in _sizes(cand.sizes)}
    cases = [Case(question_named(v.question), v.size_bytes, size_text.get(v.size_bytes, f"{v.size_bytes}B"),
                  v.budget_bytes) for v in suspects]  # fmt: skip
    with _OneAtATime():
        if not measure(store, arms, cases, max(cand.repeat, RERUN_REPEAT), ("sidecar",)):
            raise call.cancelled_error()
    keys = {_key(v) for v in suspects}
    cand_rows = [r for r in store.results(cand.run_id) if r["rerun"] == compare_id]
    base_rows = [
        r for r in store.results(base.run_id) if r["rerun"] == (compare_id if len(arms) == 2 else None)
    ]
    who = (
        "baseline and candidate settings alternately"
        if len(arms) == 2
        else "the candidate only (the baseline is other code)"
    )
    notes.append(
        f"re-measured {len(suspects)} suspect(s), {who}: {', '.join(f'{q}@{s}' for q, s, _ in keys)}"
    )
    return [r for r in base_rows if _key(r) in keys], cand_rows


@registry.method("bench.compare", params=BenchCompareParams, result=BenchCompareResult)
def compare(call: Call, p: BenchCompareParams) -> BenchCompareResult:
    """Judge a candidate run against a baseline by the regression rule, re-measuring suspects first."""
    call.session.require()
    if p.report is not None:
        _report_target(call, p.report)  # before any re-measuring
    store = _store(call)
    base = store.resolve(p.baseline)
    cand = store.resolve(p.candidate) if p.candidate is not None else next(
        (r for r in store.runs() if r.status == "done"), base)  # fmt: skip
    notes: list[str] = []
    same = base.machine.fingerprint == cand.machine.fingerprint
    if not same and not p.allow_other_machine:
        raise InvalidParams(
            f"runs {base.run_id} and {cand.run_id} were measured on different machines "
            f"({base.machine.fingerprint} vs {cand.machine.fingerprint})",
            hint="Compare runs of one machine, or pass allow_other_machine: true (--any-machine) knowing the "
            "figures then also measure the machines.",
            details={"baseline_machine": msgspec.to_builtins(base.machine),
                     "candidate_machine": msgspec.to_builtins(cand.machine)},
        )  # fmt: skip
    notes.append(f"same machine fingerprint {base.machine.fingerprint}" if same else
                 "DIFFERENT machines: the ratios include the machines' difference")  # fmt: skip
    if base.settings != cand.settings:
        notes.append(f"settings differ: baseline {base.settings}, candidate {cand.settings}")
    base_rows = [r for r in store.results(base.run_id) if r["rerun"] is None]
    verdicts = judge(base_rows, [r for r in store.results(cand.run_id) if r["rerun"] is None], p.rule)
    suspects = [v for v in verdicts if v.verdict == "regression"]
    rerun_names: list[str] = []
    again = _remeasure(call, store, base, cand, suspects, notes) if suspects and p.rerun else None
    if again is not None:
        fresh = {_key(v): msgspec.structs.replace(v, rerun=True) for v in judge(again[0], again[1], p.rule)}
        verdicts = [fresh.get(_key(v), v) for v in verdicts]
        rerun_names = [f"{v.question}@{v.size_bytes}" for v in suspects]
    regressions = sum(1 for v in verdicts if v.verdict in ("regression", "newly_failing"))
    improvements = sum(1 for v in verdicts if v.verdict in ("improvement", "fixed"))
    result = BenchCompareResult(
        base, cand, same, p.rule, verdicts, regressions, improvements, rerun_names, notes
    )
    if p.report is None:
        return result
    cases = summarize([r for r in store.results(cand.run_id) if r["rerun"] is None])
    return msgspec.structs.replace(result, report=_write_report(call, p.report, cand, cases, result, result))


def _report_target(call: Call, spec: ReportSpec) -> tuple[Path, str]:
    """Where the report goes and in which format; checked before a run, which can take hours."""
    path = Path(spec.path).expanduser().resolve()
    require_inside(path.parent, list(call.session.settings.allowed_directories), f"report path {spec.path!r}")
    fmt = spec.format or {".md": "md", ".html": "html", ".htm": "html", ".json": "json"}.get(
        path.suffix.lower()
    )
    if fmt is None:
        raise InvalidParams(f"cannot tell the report format of {spec.path!r}",
                            hint="Name it report.md, report.html or report.json, or pass format.")  # fmt: skip
    if not path.parent.is_dir():
        raise InputError(f"the directory of report {spec.path!r} does not exist", hint="Create it first.")
    return path, fmt


def _write_report(call: Call, spec: ReportSpec, run: RunInfo, cases: list[CaseSummary],
                  cmp: BenchCompareResult | None, whole: Any) -> ReportInfo:  # fmt: skip
    """Write the report atomically (a temporary name, then a rename) inside the allowed directories."""
    path, fmt = _report_target(call, spec)
    data = [msgspec.to_builtins(x) for x in (run, cases, cmp)]
    warnings = [] if fmt == "json" or render.have_matplotlib() else [f"no charts: {render.CHARTS_EXTRA}"]
    drawn = 0
    if fmt == "json":
        text = msgspec.json.format(msgspec.json.encode(whole)).decode() + "\n"
    elif fmt == "html":
        text = render.html_page(data[0], data[1], data[2])
        drawn = text.count("<img ")
    else:
        charts_dir = path.with_name(path.stem + "-charts")
        text = render.markdown(data[0], data[1], data[2], charts_dir)
        drawn = text.count("![")
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return ReportInfo(str(path), fmt, drawn, warnings)


@registry.method("bench.list", params=BenchListParams, result=BenchListResult)
def list_runs(call: Call, p: BenchListParams) -> BenchListResult:
    """The recorded benchmark runs, newest first."""
    store = _store(call)
    return BenchListResult(store.runs(p.label, p.limit), str(store.path))
