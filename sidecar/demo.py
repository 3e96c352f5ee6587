"""The main job on an embedded default: `python -m sidecar.demo`.

Starts a real sidecar over stdio, as the Node bridge does, with the repo's expansion pack
and its default database (`:memory:`, kept by the sidecar in a private file that it removes
on exit, so a job retried on a fresh worker still sees it); generates a sample sales dataset with DuckDB SQL (written
atomically to Parquet), analyzes it, runs a query, shows a refused statement with its
hint, and shuts the sidecar down. Everything shown comes from the sidecar's answers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from sidecar.client import REPO_ROOT, RpcError, SidecarProcess
from sidecar.units import format_size

GENERATE = """
SELECT
    range AS order_id,
    DATE '2025-01-01' + CAST(range % 365 AS INTEGER) AS order_date,
    ['north', 'south', 'east', 'west', 'central'][1 + CAST(hash(range) % 5 AS INTEGER)] AS region,
    'product-' || lpad(CAST(hash(range * 7) % 500 AS VARCHAR), 3, '0') AS product,
    CAST(1 + hash(range * 13) % 20 AS INTEGER) AS quantity,
    CAST((hash(range * 31) % 100000) / 100.0 AS DECIMAL(10, 2)) AS unit_price,
    CASE WHEN range % 97 = 0 THEN NULL ELSE hash(range * 17) % 10000 END AS customer_id
FROM range({rows})
"""

REPORT = """
SELECT region,
       count(*) AS orders,
       sum(quantity * unit_price) AS revenue,
       round(avg(quantity), 2) AS avg_quantity,
       count(DISTINCT customer_id) AS customers
FROM '{path}'
GROUP BY region
ORDER BY revenue DESC
"""


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cells[0], widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(r, widths)) for r in cells[1:]
    ]
    return "\n".join("    " + line for line in lines)


def _numeric(text: str) -> bool:
    return text.replace(".", "", 1).replace("-", "", 1).isdigit()


def say(text: str = "") -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of sample data (default 2,000,000)")
    parser.add_argument(
        "--dir", type=Path, default=REPO_ROOT / ".bmad-data" / "demo", help="where the sample data goes"
    )
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    data = (args.dir / "sales.parquet").resolve()
    env = dict(os.environ, BMAD_DATA_LOG_LEVEL=os.environ.get("BMAD_DATA_LOG_LEVEL", "warning"))
    env["BMAD_DATA_ALLOWED_DIRECTORIES"] = str(args.dir.resolve())

    with SidecarProcess(env=env, cwd=args.dir) as sc:
        init = sc.request("initialize", {"client": {"name": "bmad-data demo", "version": "1"}})
        res, settings = init["resources"], init["settings"]
        say(
            f"🔍 bmad-data sidecar {init['server']['version']} (pid {sc.pid}), DuckDB {init['duckdb_version']}, over stdio"
        )
        say(
            f"   machine: {format_size(res['total_memory_bytes'])} RAM, {res['usable_cpus']} usable CPUs, "
            f"cgroup limit {format_size(res['cgroup_memory_limit_bytes']) if res['cgroup_memory_limit_bytes'] else 'none'}"
        )
        say(
            f"   job memory budget {format_size(settings['memory_budget_bytes'])}  <- {settings['sources']['memory_budget_bytes']}"
        )
        say(
            f"   DuckDB memory_limit {format_size(settings['duckdb_memory_limit_bytes'])}  <- {settings['sources']['duckdb_memory_limit_bytes']}"
        )
        say(
            f"   threads {settings['threads']}, spill to {settings['temp_directory']} "
            f"(cap {format_size(settings['max_temp_directory_size_bytes'])})"
        )
        say()

        say(f"🔍 Generating {args.rows:,} sample orders with DuckDB SQL -> {data.name} (atomic write)...")
        made = sc.request(
            "query.run",
            {
                "sql": GENERATE.format(rows=args.rows),
                "output": {"path": str(data), "format": "parquet", "overwrite": True},
            },
        )
        say(
            f"✅ wrote {made['output']['rows']:,} rows, {format_size(made['output']['bytes'])} "
            f"in {made['stats']['elapsed_ms'] / 1000:.2f} s (peak RSS {format_size(made['stats']['peak_rss_bytes'])})"
        )
        say()

        say("🔍 Starting data analysis (dataset.analyze)...")
        started = time.perf_counter()
        profile = sc.request("dataset.analyze", {"path": str(data)})
        took = time.perf_counter() - started
        exact = "exact" if profile["row_count_exact"] else "estimated"
        say(
            f"✅ {profile['format']}: {profile['row_count']:,} rows ({exact}), {format_size(profile['bytes'])}, "
            f"analyzed in {took:.2f} s"
        )
        say(
            table(
                ["column", "type", "nulls", "~distinct", "min", "max", "mean"],
                [
                    [
                        c["name"],
                        c["type"],
                        c["null_count"],
                        c["approx_distinct"],
                        c["min"],
                        c["max"],
                        None if c["mean"] is None else round(c["mean"], 2),
                    ]
                    for c in profile["columns"]
                ],
            )
        )
        for note in profile["notes"]:
            say(f"    note: {note}")
        say()

        say("🔍 Revenue by region (query.run)...")
        report = sc.request("query.run", {"sql": REPORT.format(path=data)})
        say(table([c["name"] for c in report["columns"]], report["rows"]))
        say(
            f"✅ {report['row_count']} rows in {report['stats']['elapsed_ms']:.0f} ms "
            f"(peak RSS {format_size(report['stats']['peak_rss_bytes'])})"
        )
        say()

        say("🔍 An agent tries to raise DuckDB's memory limit from SQL...")
        try:
            sc.request("query.run", {"sql": "SET memory_limit = '100GB'"})
            say("❌ the sidecar accepted it; this is a bug")
            return 1
        except RpcError as err:
            say(f"⚠️  refused: {err.code}: {err}")
            say(f"    hint: {err.hint}")
        say()
        sc.request("shutdown")
        sc.notify("exit")
        code = sc.proc.wait(timeout=30)
    say(f"✅ Sidecar shut down cleanly (exit {code}). Sample data kept at {data}")
    return code


if __name__ == "__main__":
    sys.exit(main())
