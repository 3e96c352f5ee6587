"""The plain side's child: one question in plain DuckDB, in a fresh process, answer fingerprinted.

    python -m sidecar.bench.suite.plain '{"sql": ..., "threads": 2, "memory_limit": 1000000, "temp_directory": ...,
                                          "preserve_insertion_order": false}'

Prints one JSON line: status (`ok` or the error code the sidecar would use), error, wall_ms
(query + fetch of the second run: connecting and a first, untimed run are not timed; see `run`),
buffer_peak and temp_peak (duckdb_memory() every 50 ms), fingerprint.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from sidecar.bench.suite.sides import BackgroundSampler, fingerprint


class BufferWatcher(BackgroundSampler):
    """DuckDB's buffer and temp-file bytes (duckdb_memory()) from a second cursor every 50 ms, peaks kept.

    A failed sample is counted in `errors`: a watcher that never answers shows as a peak of 0.
    """

    def __init__(self, con: Any) -> None:
        self.con = con
        self.buffer_peak = self.temp_peak = self.errors = 0
        super().__init__("buffer-watcher")

    def _loop(self) -> None:
        import duckdb

        cur = self.con.cursor()
        while not self._stop.wait(0.05):
            try:
                used, temp = cur.execute(
                    "SELECT sum(memory_usage_bytes), sum(temporary_storage_bytes) FROM duckdb_memory()"
                ).fetchone() or (0, 0)
            except duckdb.Error:
                self.errors += 1
                continue
            self.buffer_peak = max(self.buffer_peak, int(used or 0))
            self.temp_peak = max(self.temp_peak, int(temp or 0))


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import duckdb

    report: dict[str, Any] = {"status": "ok", "error": "", "fingerprint": ""}
    config: dict[str, Any] = {"threads": spec["threads"], "temp_directory": spec["temp_directory"],
                              "preserve_insertion_order": spec.get("preserve_insertion_order", True)}  # fmt: skip
    if spec["memory_limit"] is not None:
        config["memory_limit"] = f"{spec['memory_limit']}B"
    con = duckdb.connect(config=config)
    # The first run of a question in a process pays DuckDB's lazy setup and its first look at the
    # files: 20-60 ms on a 1 MB TPC-H query measured here, several times the query. A sidecar
    # worker has run the question in the benchmark's warm-up before any counted run, so the plain
    # side runs it once untimed too (`warm`, default true) and times the second run.
    runs = 2 if spec.get("warm", True) else 1
    with BufferWatcher(con) as watcher:
        for _ in range(runs):
            started = time.perf_counter()
            try:
                report["fingerprint"] = fingerprint(con.execute(spec["sql"]).fetchall())
            except duckdb.OutOfMemoryException as exc:
                spill = "max_temp_directory_size" in str(exc)
                report.update(
                    status="SPILL_LIMIT" if spill else "OUT_OF_MEMORY", error=str(exc).splitlines()[0][:300]
                )
            except duckdb.Error as exc:
                error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                report.update(status="SQL_ERROR", error=error)
            report["wall_ms"] = (time.perf_counter() - started) * 1000
            if report["status"] != "ok":
                break  # a warm-up that fails is the answer: the same run would fail again
    report.update(buffer_peak=watcher.buffer_peak, temp_peak=watcher.temp_peak)
    return report


if __name__ == "__main__":
    sys.stdout.write(json.dumps(run(json.loads(sys.argv[1]))) + "\n")
