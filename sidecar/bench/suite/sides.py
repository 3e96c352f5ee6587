"""The two sides of a comparison: one `query.run` through a real sidecar, and plain DuckDB in a fresh process.

Both are measured the same way from outside: this process polls the RSS of the side's whole
process tree (the sidecar and its workers; the plain child) every 20 ms and keeps the peak.
Wall time is the `query.run` round trip for the sidecar (what a client waits for) and query +
fetch inside the plain child (its interpreter start and connect are not timed: the sidecar's
workers are started and connected before a request arrives).
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import msgspec

__all__ = ["BackgroundSampler", "Measurement", "TreeSampler", "fingerprint", "run_plain", "run_sidecar"]

SAMPLE_S = 0.020
CHILDREN_EVERY = 5
GUARD_FACTOR = 3
GUARD_SLACK = 1 << 30
REPO = Path(__file__).resolve().parents[3]


class Measurement(msgspec.Struct, kw_only=True):
    """One run of one question on one side."""

    side: str
    """`sidecar` or `plain`."""
    status: str
    """`ok`, or the error code (OUT_OF_MEMORY, SQL_ERROR, TIMEOUT, KILLED, CANCELLED, ...)."""
    error: str = ""
    wall_ms: float = 0.0
    peak_rss_bytes: int = 0
    """The side's whole process tree, sampled every 20 ms."""
    peak_duckdb_bytes: int = 0
    """DuckDB's buffer manager at its peak (duckdb_memory() on the plain side, the sidecar's stats)."""
    spill_bytes: int = 0
    fingerprint: str = ""
    rungs: str = ""
    """The sidecar's retry-ladder attempts as `rung:outcome`, comma-separated."""
    parts: int | None = None


def _canonical(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):  # the sidecar sends integers beyond 2^53 as decimal strings
        return value if abs(value) < 2**53 else str(value)
    if isinstance(value, decimal.Decimal):  # ... and DECIMAL as a string with every digit
        return format(value, "f")
    if isinstance(value, float):
        number = float(f"{float(value):.6g}")
        return int(number) if number.is_integer() else number
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return str(value)


def fingerprint(rows: list[list[Any]] | list[tuple[Any, ...]]) -> str:
    """An answer's check value: rows in the sidecar's wire encoding (docs/protocol.md, Value
    encoding), doubles to 6 significant digits, in sorted order, hashed.

    Float sums differ in their last bits between plans and thread schedules; 6 digits do not.
    >>> import decimal
    >>> fingerprint([(decimal.Decimal("12.30"), 2**60)]) == fingerprint([["12.30", str(2**60)]])
    True
    >>> fingerprint([(1, 2.0000000001)]) == fingerprint([[1, 2]])
    True
    >>> fingerprint([[1]]) == fingerprint([[2]])
    False
    """
    canon = sorted(json.dumps(_canonical(list(r)), sort_keys=True) for r in rows)
    return hashlib.sha256("\n".join(canon).encode()).hexdigest()[:16]


class BackgroundSampler:
    """A daemon thread that runs `_loop` from `with` to the end of the block (`_stop` ends it)."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        raise NotImplementedError


class TreeSampler(BackgroundSampler):
    """RSS of a process and all its descendants every 20 ms: the peak of their sum, and each one's peak.

    `guard`: kill the whole tree once the sum passes it; `guard_each`: kill any one process past it.
    Either is a benchmark's safety net against a bug, recorded in `guard_kills` as (pid, rss).
    """

    def __init__(self, pid: int, guard: int | None = None, *, guard_each: int | None = None) -> None:
        import psutil

        self._psutil = psutil
        self.root = psutil.Process(pid)
        self.guard, self.guard_each = guard, guard_each
        self.peak = 0
        self.peaks: dict[int, int] = {}
        self.guard_kills: list[tuple[int, int]] = []
        super().__init__("bench-sampler")

    @property
    def guard_tripped(self) -> bool:
        return bool(self.guard_kills)

    @property
    def worst_descendant(self) -> int:
        return max((v for pid, v in self.peaks.items() if pid != self.root.pid), default=0)

    def _kill(self, proc: Any, rss: int) -> None:
        self.guard_kills.append((proc.pid, rss))
        try:
            proc.kill()
        except self._psutil.NoSuchProcess:
            pass

    def _loop(self) -> None:
        procs: list[Any] = []
        tick = 0
        while not self._stop.is_set():
            if tick % CHILDREN_EVERY == 0:
                try:
                    procs = [self.root, *self.root.children(recursive=True)]
                except self._psutil.NoSuchProcess:
                    return
            tick += 1
            total = 0
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                except self._psutil.NoSuchProcess:
                    continue
                total += rss
                self.peaks[proc.pid] = max(self.peaks.get(proc.pid, 0), rss)
                if self.guard_each is not None and rss > self.guard_each:
                    self._kill(proc, rss)
            self.peak = max(self.peak, total)
            if self.guard is not None and total > self.guard and not self.guard_kills:
                for proc in reversed(procs):
                    self._kill(proc, total)
            self._stop.wait(SAMPLE_S)


def run_plain(
    sql: str, *, threads: int, budget: int | None, temp_directory: str, timeout_s: float,
    cancelled: Callable[[], bool], preserve_insertion_order: bool = True,
) -> Measurement:  # fmt: skip
    """One question in a fresh `python -m sidecar.bench.suite.plain` with DuckDB's memory_limit = the budget."""
    spec = {"sql": sql, "threads": threads, "memory_limit": budget, "temp_directory": temp_directory,
            "preserve_insertion_order": preserve_insertion_order}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "sidecar.bench.suite.plain", json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)  # fmt: skip
    guard = None if budget is None else GUARD_FACTOR * budget + GUARD_SLACK
    verdict = ""
    started = time.monotonic()
    with TreeSampler(proc.pid, guard) as sampler:
        while proc.poll() is None:
            if cancelled() or time.monotonic() - started > timeout_s:
                verdict = "CANCELLED" if cancelled() else "TIMEOUT"
                proc.kill()
            time.sleep(0.01)
    out, err = proc.communicate()
    m = Measurement(side="plain", status="KILLED" if sampler.guard_tripped else verdict or "WORKER_CRASHED",
                    peak_rss_bytes=sampler.peak)  # fmt: skip
    lines = out.decode().strip().splitlines()
    if not verdict and not sampler.guard_tripped and proc.returncode == 0 and lines:
        child = json.loads(lines[-1])
        m.status, m.error, m.wall_ms, m.fingerprint = (
            child["status"],
            child["error"],
            child["wall_ms"],
            child["fingerprint"],
        )
        m.peak_duckdb_bytes, m.spill_bytes = child["buffer_peak"], child["temp_peak"]
    elif not m.error:
        m.error = f"exit {proc.returncode}: {err.decode('utf-8', 'replace').strip()[-300:]}"
    return m


def run_sidecar(
    sc: Any, sql: str, settings: dict[str, Any], *, timeout_s: float, cancelled: Callable[[], bool]
) -> Measurement:
    """One `query.run` through the sidecar `sc` (a sidecar.client.SidecarProcess); never raises for the query.

    Past `timeout_s` this side cancels the request itself and records TIMEOUT, as the plain side
    does, so one timeout means the same on both sides.
    """
    from sidecar.client import RpcError

    m = Measurement(side="sidecar", status="ok")
    params = {"sql": sql, "settings": settings, "max_rows": 1_000_000, "timeout_ms": int(timeout_s * 1000)}
    with TreeSampler(sc.pid) as sampler:
        started = time.perf_counter()
        request_id, future = sc.call("query.run", params)
        stopped = ""  # why this side asked the sidecar to stop: the benchmark's own timeout, or a cancel
        try:
            while True:
                try:
                    result = future.result(
                        timeout=max(0.0, min(0.02, started + timeout_s - time.perf_counter()))
                    )
                    break
                except TimeoutError:
                    if not stopped and (cancelled() or time.perf_counter() - started > timeout_s):
                        stopped = "CANCELLED" if cancelled() else "TIMEOUT"
                        sc.cancel(request_id)
            m.wall_ms = (time.perf_counter() - started) * 1000
            stats = result["stats"]
            m.fingerprint = fingerprint(result["rows"])
            m.peak_duckdb_bytes, m.spill_bytes = (
                stats.get("peak_buffer_bytes", 0),
                stats.get("peak_spill_bytes", 0),
            )
            m.parts = stats.get("partitions")
            m.rungs = ",".join(f"{a['rung']}:{a['outcome']}" for a in stats.get("attempts", []))
            if m.wall_ms > timeout_s * 1000:  # the answer beat the cancel, not the deadline
                m.status, m.error = (
                    "TIMEOUT",
                    f"answered after {m.wall_ms:.0f} ms, past the timeout of {timeout_s * 1000:.0f} ms",
                )
        except RpcError as exc:
            attempts = exc.data.get("details", {}).get("attempts", [])
            m.status, m.error = exc.code or str(exc.rpc_code), str(exc).splitlines()[0][:300]
            if stopped and m.status == "CANCELLED":
                m.status = stopped
            m.rungs = ",".join(f"{a['rung']}:{a['outcome']}" for a in attempts)
        except EOFError as exc:
            m.status, m.error = "SIDECAR_EXITED", str(exc)
        if m.status != "ok":
            m.wall_ms = (time.perf_counter() - started) * 1000
    m.peak_rss_bytes = sampler.peak
    return m
