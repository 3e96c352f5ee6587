"""Benchmark suites with baselines: data, questions, side-by-side runs, results, comparisons, reports.

`bench.run` (sidecar/methods/bench.py) drives `runner.run_suite`; every question runs through a
fresh `python -m sidecar` (over its protocol) and through plain DuckDB in a fresh process.
See docs/performance/benchmarks.md.
"""
