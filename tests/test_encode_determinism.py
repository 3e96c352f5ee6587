"""tests/test_encode_property.py draws the same examples in every process: whatever the hash
seed, and whether the process imported one sidecar module or all of them (as the full suite
does). Hypothesis mixes the literals of every loaded local module into its draws; the property
test turns that off, and the control here shows what happens when it does not.

Each case runs in a fresh Python process, which prints a digest of the examples drawn.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = 60

DRAW = """
import hashlib, importlib, pkgutil, sys
from contextlib import nullcontext
sys.path[:0] = [sys.argv[3] + "/tests", sys.argv[3]]
if sys.argv[1] == "all":
    import sidecar
    for module in pkgutil.walk_packages(sidecar.__path__, "sidecar."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
import test_encode_property as prop
with prop.without_local_constants() if sys.argv[2] == "patched" else nullcontext():
    drawn = prop.drawn_examples(int(sys.argv[4]))
print(len(drawn), hashlib.sha256("\\n".join(drawn).encode()).hexdigest())
"""


def _digests(cases: list[tuple[str, str, str]]) -> list[str]:
    """For each (hash seed, modules imported, patched or not), the digest of the drawn examples."""
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", DRAW, modules, patched, str(ROOT), str(EXAMPLES)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed, modules, patched in cases
    ]
    out = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
        count, digest = stdout.split()
        assert int(count) == EXAMPLES
        out.append(digest)
    return out


def test_the_property_test_draws_the_same_examples_in_every_process():
    patched = [("0", "one", "patched"), ("1", "one", "patched"), ("2", "all", "patched"), ("3", "all", "patched")]
    # The control: with Hypothesis's local constants left in, importing every sidecar module
    # changes the examples (this is how a full-suite run drew a case a lone run never did).
    control = [("0", "one", "unpatched"), ("0", "all", "unpatched")]
    digests = _digests(patched + control)
    assert len(set(digests[:4])) == 1, digests
    assert digests[4] != digests[5], "Hypothesis no longer draws local constants: the patch may go"
