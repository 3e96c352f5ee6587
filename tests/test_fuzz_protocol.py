"""The protocol fuzzer in CI: a thousand hostile cases (3000 in scripts/test-slow.sh), fixed seed, one real
sidecar over real pipes.

The long, coverage-guided run is `scripts/fuzz.sh` (docs/protocol.md, "Malformed input").
Crashes it found are cases of `test_every_bad_line_gets_its_error_and_the_next_request_is_served`
in tests/test_protocol.py.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import examples

from sidecar.fuzz import fuzz
from sidecar.fuzz_cases import Case, CaseGenerator, encode, load_param_schemas

SEED = 20261206
CASES = examples(3000)


@pytest.fixture
def quiet_sidecar(start_sidecar, data_dir: Path):
    (data_dir / "data.csv").write_text("id,name\n1,a\n2,b\n")
    return start_sidecar("--no-watch", BMAD_DATA_LOG_LEVEL="warning")


@pytest.mark.timeout(300)
def test_thousands_of_hostile_cases_never_crash_the_sidecar_and_every_id_is_answered_once(quiet_sidecar):
    report = fuzz(quiet_sidecar, cases=CASES, seed=SEED)
    print(report.summary())
    assert not report.failures, "\n".join(report.failures)
    assert report.cases == CASES
    assert set(report.kinds) == {
        "params",
        "envelope",
        "nesting",
        "numbers",
        "tokens",
        "text",
        "batch",
        "cancel",
        "mutation",
    }
    assert report.expected_ids > 2 * CASES  # batches: many ids per case
    # every class of answer the corpus aims at was reached, real work included
    for code in (
        "PARSE_ERROR",
        "INVALID_REQUEST",
        "METHOD_NOT_FOUND",
        "INVALID_PARAMS",
        "CANCELLED",
        "result",
    ):
        assert report.codes[code] > 0, report.summary()
    assert quiet_sidecar.close() == 0


def test_the_corpus_is_the_same_for_the_same_seed():
    methods = ["config.get", "query.run", "jobs.status", "shutdown", "exit", "$/cancelRequest"]

    def corpus(seed: int) -> list[bytes]:
        generator = CaseGenerator(random.Random(seed), methods, load_param_schemas())
        return [line for _ in range(200) for line in generator.next_case().lines]

    assert corpus(SEED) == corpus(SEED)
    assert corpus(SEED) != corpus(SEED + 1)
    assert not any(b"\n" in line for line in corpus(SEED))
    assert not any(b'"method":"exit"' in line for line in corpus(SEED))


def test_the_oracle_reports_a_missing_answer_and_a_second_one(quiet_sidecar):
    """The checks can fail: an id the sidecar never saw, and an id answered twice, are both reported."""
    request = {"jsonrpc": "2.0", "id": "twice", "method": "config.get"}
    cases = [
        Case(
            "made-up",
            [encode({"jsonrpc": "2.0", "id": "seen", "method": "config.get"})],
            expect=["never-sent"],
        ),
        Case("made-up", [encode(request), encode(request)], expect=["twice"]),
    ]
    report = fuzz(quiet_sidecar, cases=cases, ping_timeout=5)
    failures = "\n".join(report.failures)
    assert "'never-sent' of case 0 got 0 answers" in failures
    assert "'twice' of case 1 got 2 answers" in failures
    assert "an answer to id 'seen', which no request carried" in failures


def test_the_oracle_reports_a_dead_sidecar(quiet_sidecar):
    ping = encode({"jsonrpc": "2.0", "id": "p", "method": "config.get"})

    def cases():
        yield Case("made-up", [ping], expect=["p"])
        quiet_sidecar.proc.kill()  # as a crash would
        quiet_sidecar.proc.wait()
        yield Case("made-up", [b"{}"])

    report = fuzz(quiet_sidecar, cases=cases(), ping_timeout=5)
    assert report.cases == 2
    assert report.failures and "case 1 (made-up)" in report.failures[0]
    assert "the sidecar is exited with -9" in report.failures[0]
