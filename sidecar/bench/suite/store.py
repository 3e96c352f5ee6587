"""Benchmark results in one DuckDB file, `<state>/bench/results.duckdb`: one row per question, side and repeat.

Runs are keyed by the machine's fingerprint (CPU model, cores, memory, cgroup limit), versions
(sidecar, DuckDB, Python), the git commit if any, the settings and the suite, so a comparison
can refuse to mix machines. The file is opened only for the moment of a read or a write, so two
sidecars can share it; a writer that finds it locked retries for a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import msgspec

from sidecar.bench.suite.sides import Measurement
from sidecar.errors import InvalidParams, did_you_mean

__all__ = [
    "Machine",
    "ResultRow",
    "ResultStore",
    "RunInfo",
    "SettingValue",
    "git_commit",
    "machine_info",
    "versions",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, label VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP,
    suite VARCHAR, sizes VARCHAR, repeat INTEGER, settings VARCHAR, machine_fingerprint VARCHAR,
    machine VARCHAR, versions VARCHAR, git_commit VARCHAR, status VARCHAR
);
CREATE TABLE IF NOT EXISTS results (
    run_id VARCHAR, question VARCHAR, class VARCHAR, size_bytes BIGINT, input_bytes BIGINT,
    budget_bytes BIGINT, side VARCHAR, repeat INTEGER, rerun VARCHAR, status VARCHAR, error VARCHAR,
    wall_ms DOUBLE, peak_rss_bytes BIGINT, peak_duckdb_bytes BIGINT, spill_bytes BIGINT,
    fingerprint VARCHAR, rungs VARCHAR, parts INTEGER
);
"""


SettingValue = str | int | float | bool
"""A setting as query.run takes it (memory_limit "2GB", threads 2, preserve_insertion_order false)."""


class Machine(msgspec.Struct, frozen=True):
    cpu_model: str
    cores: int
    memory_bytes: int
    cgroup_memory_limit_bytes: int | None
    fingerprint: str
    """sha256 of the four facts above, 12 hex digits: runs compare only within one."""


class RunInfo(msgspec.Struct, frozen=True):
    run_id: str
    label: str | None
    started_at: str
    suite: str
    sizes: list[str]
    repeat: int
    settings: dict[str, SettingValue]
    machine: Machine
    versions: dict[str, str]
    git_commit: str | None
    status: str
    """`running`, `done`, `cancelled` or `failed`."""


class ResultRow(msgspec.Struct, frozen=True, kw_only=True):
    question: str
    cls: str
    size_bytes: int
    input_bytes: int
    budget_bytes: int | None
    repeat: int
    rerun: str | None
    """The comparison that re-measured this row, or None for the run's own rows."""
    m: Measurement


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> Machine:
    from sidecar.resources import detect_resources

    res = detect_resources()
    facts = (_cpu_model(), res.usable_cpus, res.total_memory_bytes, res.cgroup_memory_limit_bytes)
    digest = hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:12]
    return Machine(*facts, fingerprint=digest)


def versions() -> dict[str, str]:
    import duckdb

    from sidecar import __version__

    return {"sidecar": __version__, "duckdb": duckdb.__version__, "python": platform.python_version()}


def git_commit(repo: Path) -> str | None:
    """The commit checked out in `repo`, with `+dirty` when the tree has changes; None outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=False)  # fmt: skip
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


class ResultStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> Any:
        import duckdb

        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(100):
            try:
                con = duckdb.connect(str(self.path), config={"threads": 1, "memory_limit": "256MB"})
                con.execute(_SCHEMA)
                return con
            except duckdb.IOException:  # another sidecar holds the file for a moment
                if attempt == 99:
                    raise
                time.sleep(0.1)

    def start(self, info: RunInfo) -> None:
        with self._connect() as con:
            con.execute(
                "INSERT INTO runs VALUES (?, ?, ?::TIMESTAMP, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [info.run_id, info.label, info.started_at, info.suite, json.dumps(info.sizes), info.repeat,
                 json.dumps(info.settings), info.machine.fingerprint, msgspec.json.encode(info.machine).decode(),
                 json.dumps(info.versions), info.git_commit, info.status],
            )  # fmt: skip

    def add(self, run_id: str, rows: list[ResultRow]) -> None:
        with self._connect() as con:
            con.executemany(
                "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [[run_id, r.question, r.cls, r.size_bytes, r.input_bytes, r.budget_bytes, r.m.side, r.repeat,
                  r.rerun, r.m.status, r.m.error, r.m.wall_ms, r.m.peak_rss_bytes, r.m.peak_duckdb_bytes,
                  r.m.spill_bytes, r.m.fingerprint, r.m.rungs, r.m.parts] for r in rows],
            )  # fmt: skip

    def finish(self, run_id: str, status: str) -> None:
        with self._connect() as con:
            con.execute("UPDATE runs SET status = ?, finished_at = now() WHERE run_id = ?", [status, run_id])

    def runs(self, label: str | None = None, limit: int = 50) -> list[RunInfo]:
        """The newest runs first (only those with `label` when given)."""
        if not self.path.exists():
            return []
        where, params = ("WHERE label = ?", [label]) if label is not None else ("", [])
        with self._connect() as con:
            rows = con.execute(
                f"SELECT run_id, label, strftime(started_at, '%Y-%m-%dT%H:%M:%S'), suite, sizes, repeat, settings, "
                f"machine, versions, git_commit, status FROM runs {where} ORDER BY started_at DESC, run_id DESC LIMIT ?",
                [*params, limit],
            ).fetchall()  # fmt: skip
        return [
            RunInfo(
                r[0],
                r[1],
                r[2],
                r[3],
                json.loads(r[4]),
                r[5],
                json.loads(r[6]),
                msgspec.json.decode(r[7], type=Machine),
                json.loads(r[8]),
                r[9],
                r[10],
            )
            for r in rows
        ]

    def resolve(self, ref: str) -> RunInfo:
        """A run by id, or the newest finished run with that label; INVALID_PARAMS naming what exists."""
        known = self.runs(limit=10_000)
        for run in known:
            if run.run_id == ref:
                return run
        for run in known:
            if run.label == ref and run.status == "done":
                return run
        names = {r.run_id for r in known} | {r.label for r in known if r.label}
        raise InvalidParams(
            f"no finished benchmark run with id or label {ref!r}{did_you_mean(ref, names)}",
            hint="List the runs with bench.list (bmad-data benchmark --list); run one with --label to keep a baseline.",
        )

    def results(self, run_id: str) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self._connect() as con:
            cur = con.execute("SELECT * FROM results WHERE run_id = ? ORDER BY rowid",
                              [run_id])  # fmt: skip
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]
