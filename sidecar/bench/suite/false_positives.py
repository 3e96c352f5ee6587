"""The regression rule's false-positive rate: same code, same machine, runs compared in pairs.

    python -m sidecar.bench.suite.false_positives [--pairs 10] [--suite query] [--size 10MB] [--repeat 3]
                                                   [--state /tmp/bmad-fp] [--json fp.json]

Runs 2 x pairs benchmark runs through one sidecar (bench.run, the same settings every time),
then bench.compare on each pair (first against second, suspects re-measured as always) and
prints how many cases and pairs were flagged. Every flag here is a false positive: nothing
changed between the two runs of a pair. docs/performance/benchmarks.md quotes the figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from sidecar.client import SidecarProcess


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--suite", default="query")
    parser.add_argument("--size", default="10MB")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--state", default="/tmp/bmad-fp", help="the sidecar's state directory (data, results)"
    )
    parser.add_argument("--json", default="", help="also write the verdicts here")
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMAD_DATA_")}
    env.update(BMAD_DATA_STATE_DIR=args.state, BMAD_DATA_LOG_LEVEL="warning")
    Path(args.state).mkdir(parents=True, exist_ok=True)
    sc = SidecarProcess(env=env, cwd=args.state)
    began = time.monotonic()
    pairs: list[dict[str, Any]] = []
    try:
        sc.request("initialize", {"client": {"name": "false-positives"}})
        params = {"suite": args.suite, "sizes": [args.size], "repeat": args.repeat}
        for i in range(args.pairs):
            runs = [sc.request("bench.run", params, timeout=7200)["run"]["run_id"] for _ in range(2)]
            cmp = sc.request("bench.compare", {"baseline": runs[0], "candidate": runs[1]}, timeout=7200)
            flagged = [v["question"] for v in cmp["cases"] if v["verdict"] in ("regression", "newly_failing")]
            pairs.append({"baseline": runs[0], "candidate": runs[1], "cases": len(cmp["cases"]),
                          "suspects": cmp["rerun"], "flagged": flagged, "notes": cmp["notes"]})  # fmt: skip
            sys.stderr.write(f"pair {i + 1}/{args.pairs}: {len(cmp['cases'])} cases, suspects {cmp['rerun']}, "
                             f"flagged {flagged}\n")  # fmt: skip
    finally:
        sc.close(timeout=60)
    cases = sum(p["cases"] for p in pairs)
    n_flagged = sum(len(p["flagged"]) for p in pairs)
    suspects = sum(len(p["suspects"]) for p in pairs)
    bad_pairs = sum(1 for p in pairs if p["flagged"])
    sys.stdout.write(
        f"{len(pairs)} same-code pairs, suite {args.suite} at {args.size}, repeat {args.repeat}: "
        f"{cases} case comparisons, {suspects} suspect(s) before re-measuring, {n_flagged} flagged "
        f"({n_flagged / max(1, cases):.1%} of cases; {bad_pairs}/{len(pairs)} pairs with a flag); "
        f"{(time.monotonic() - began) / 60:.0f} min, load average {os.getloadavg()[0]:.1f} at the end\n"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(pairs, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
