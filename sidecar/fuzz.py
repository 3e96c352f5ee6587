"""Fuzz the protocol against one real `python -m sidecar`, over real pipes.

    python -m sidecar.fuzz --cases 20000 --seed 7     structure-aware cases at volume (seed 0: random)
    scripts/fuzz.sh 600                               coverage-guided (atheris), in its own venv

After every case the sidecar must still be running and answer `config.get` (served inline, so
its answer also means every earlier line was dispatched). At the end every request that carried
an integer or string id in a well-formed line must have had exactly one answer with that id, no
answer may be INTERNAL (a bug by definition), and stderr must hold no traceback. CI runs a few
thousand cases with a fixed seed (tests/test_fuzz_protocol.py); a crash this finds becomes a
case in tests/test_protocol.py.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from sidecar.client import REPO_ROOT, SidecarProcess
from sidecar.fuzz_cases import Case, CaseGenerator, load_param_schemas

__all__ = ["AnswerLedger", "FuzzReport", "fuzz", "main", "sidecar_env"]


@dataclass
class FuzzReport:
    cases: int = 0
    lines: int = 0
    bytes_sent: int = 0
    expected_ids: int = 0
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    seconds: dict[str, float] = field(default_factory=lambda: collections.defaultdict(float))
    """Time spent per kind of case, sending it and waiting for the ping after it."""
    codes: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        codes = ", ".join(f"{k} {v}" for k, v in self.codes.most_common())
        kinds = ", ".join(f"{k} {n} ({self.seconds[k]:.1f} s)" for k, n in self.kinds.most_common())
        return (
            f"{self.cases} cases ({kinds}), {self.lines} lines, {self.bytes_sent / 2**20:.1f} MiB sent, "
            f"{self.expected_ids} ids answered exactly once; answers by code: {codes}; "
            f"{self.seconds['(settling)']:.1f} s settling; {len(self.failures)} failure(s)"
        )


class AnswerLedger:
    """Counts every answer on stdout by id, reading the raw lines the client recorded."""

    def __init__(self, sidecar: SidecarProcess) -> None:
        self.sidecar = sidecar
        self.by_id: collections.Counter[Any] = collections.Counter()
        self.internal: list[Any] = []
        self.undecodable: list[bytes] = []
        self.codes: collections.Counter[str] = collections.Counter()
        self._seen = 0

    def update(self) -> None:
        lines = self.sidecar.raw_lines
        while self._seen < len(lines):
            line = lines[self._seen]
            self._seen += 1
            try:
                message = msgspec.json.decode(line)
            except msgspec.DecodeError:
                self.undecodable.append(line[:200])
                continue
            for item in message if isinstance(message, list) else [message]:
                if not isinstance(item, dict) or "method" in item:
                    continue  # a notification ($/progress, config/changed, ...)
                id = item.get("id")
                if isinstance(id, str) and id.startswith("ping-"):
                    continue
                if id is not None:
                    self.by_id[id] += 1
                code = item["error"]["data"]["code"] if "error" in item else "result"
                self.codes[code] += 1
                if code == "INTERNAL":
                    self.internal.append(item)


def fuzz(
    sidecar: SidecarProcess, *, cases: int | Iterable[Case], seed: int = 1, ping_timeout: float = 30.0
) -> FuzzReport:
    """Run `cases` (a number of generated ones, or given ones) against `sidecar`; the report lists
    every failure found."""
    report = FuzzReport()
    init = sidecar.request("initialize", {"client": {"name": "sidecar.fuzz"}}, timeout=ping_timeout)
    if isinstance(cases, int):
        generator = CaseGenerator(random.Random(seed), init["methods"], load_param_schemas())
        cases = (generator.next_case() for _ in range(cases))
    ledger = AnswerLedger(sidecar)
    expect: dict[Any, int] = {}
    maybe: dict[Any, int] = {}
    mutated_any = traced = False
    for number, case in enumerate(cases):
        started = time.monotonic()
        report.cases += 1
        report.kinds[case.kind] += 1
        mutated_any |= case.mutated
        for id in case.expect:
            expect[id] = number
        for id in case.maybe:
            maybe[id] = number
        problem = None
        for line in case.lines:
            report.lines += 1
            report.bytes_sent += len(line) + 1
            try:
                sidecar.send_raw(line)
            except OSError as exc:
                problem = f"writing its line failed ({type(exc).__name__}: {exc})"
                break
        problem = problem or _ping(sidecar, number, ping_timeout)
        report.seconds[case.kind] += time.monotonic() - started
        if not traced and any("Traceback" in line for line in sidecar.stderr_tail):
            traced = True
            report.failures.append(
                f"case {number} ({case.kind}) left a traceback on stderr: {list(sidecar.stderr_tail)[-8:]}"
            )
        if problem:
            exited = sidecar.proc.poll()
            state = "running" if exited is None else f"exited with {exited}"
            first = case.lines[0][:300] if case.lines else b""
            report.failures.append(
                f"case {number} ({case.kind}): {problem}; the sidecar is {state}; its first line: {first!r}"
            )
            break
    started = time.monotonic()
    report.failures.extend(_settle(sidecar, ledger, expect, maybe, mutated_any, ping_timeout))
    report.seconds["(settling)"] = time.monotonic() - started
    report.expected_ids = len(expect)
    report.codes = ledger.codes
    return report


def _ping(sidecar: SidecarProcess, number: int, timeout: float) -> str | None:
    if sidecar.proc.poll() is not None:
        return f"the sidecar exited with {sidecar.proc.returncode}; stderr: {list(sidecar.stderr_tail)[-5:]}"
    try:
        _, future = sidecar.call("config.get", id=f"ping-{number}")
        future.result(timeout=timeout)
    except Exception as exc:
        return f"config.get after it failed: {type(exc).__name__}: {exc}"
    return None


def _settle(
    sidecar: SidecarProcess,
    ledger: AnswerLedger,
    expect: dict[Any, int],
    maybe: dict[Any, int],
    mutated_any: bool,
    timeout: float,
) -> list[str]:
    """Wait for the work still running, then check the ledger."""
    deadline = time.monotonic() + timeout
    while True:
        ledger.update()
        if all(ledger.by_id[id] for id in expect) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    time.sleep(0.2)  # a second answer to an id would come right after the first
    ledger.update()
    failures = []
    for id, case in expect.items():
        if ledger.by_id[id] != 1:
            failures.append(f"id {id!r} of case {case} got {ledger.by_id[id]} answers, not 1")
    for id, count in ledger.by_id.items():
        if id not in expect and id in maybe and count > 1:
            failures.append(f"id {id!r} of case {maybe[id]} got {count} answers")
        elif id not in expect and id not in maybe and not mutated_any:
            failures.append(f"an answer to id {id!r}, which no request carried")
    failures.extend(f"an INTERNAL answer (a bug): {item}" for item in ledger.internal[:10])
    failures.extend(f"a line on stdout that is not JSON: {line!r}" for line in ledger.undecodable[:10])
    return failures[:50]


def sidecar_env(root: Path) -> tuple[dict[str, str], Path]:
    """An environment confined to `root` (a private pack copy, state, spill and data dirs)."""
    pack = root / "pack"
    if not pack.exists():
        shutil.copytree(REPO_ROOT / "expansion-pack", pack)
    data = root / "data"
    data.mkdir(exist_ok=True)
    (data / "data.csv").write_text("id,name\n1,a\n2,b\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMAD_DATA_")}
    env.update(
        BMAD_DATA_CONFIG_DIR=str(pack),
        BMAD_DATA_STATE_DIR=str(root / "state"),
        BMAD_DATA_TEMP_DIRECTORY=str(root / "spill"),
        BMAD_DATA_ALLOWED_DIRECTORIES=str(data),
        BMAD_DATA_LOG_LEVEL="warning",
    )
    return env, data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sidecar.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20_000, help="cases per round (default 20000)")
    parser.add_argument("--seed", type=int, default=0, help="the first round's seed; 0 picks one at random")
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds, each with a fresh sidecar and the next seed"
    )
    args = parser.parse_args(argv)
    seed = args.seed or random.SystemRandom().randint(1, 2**31)
    failed = 0
    for round in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bmad-fuzz-") as tmp:
            env, data = sidecar_env(Path(tmp))
            started = time.monotonic()
            with SidecarProcess(env=env, args=["--no-watch"], cwd=data) as sidecar:
                report = fuzz(sidecar, cases=args.cases, seed=seed + round)
            took = time.monotonic() - started
        print(f"seed {seed + round}: {report.summary()} in {took:.1f} s", flush=True)
        for failure in report.failures:
            print(f"  FAIL {failure}", flush=True)
        failed += bool(report.failures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
