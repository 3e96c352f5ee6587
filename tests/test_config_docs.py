"""docs/configuration.md stays true: its Python example runs, and every env var and ignored key is listed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sidecar.config import ENV_VARS
from sidecar.config import rules
from sidecar.config.validate import Entries, Ignore, ListOf, Section

DOC = Path(__file__).parents[1] / "docs" / "configuration.md"


def test_python_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, "the precedence example is missing"
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {})


def test_every_environment_variable_is_documented() -> None:
    text = DOC.read_text()
    for var in [*ENV_VARS, "BMAD_DATA_STATE_DIR", "BMAD_DATA_ALLOWED_DIRECTORIES", "BMAD_DATA_CONFIG_DIR"]:
        assert f"`{var}`" in text, var


def _ignored(spec: Any, out: set[str]) -> set[str]:
    if isinstance(spec, Section):
        for key, sub in spec.fields.items():
            if isinstance(sub, Ignore):
                out.add(key)
            else:
                _ignored(sub, out)
    elif isinstance(spec, (Entries, ListOf)):
        _ignored(spec.item, out)
    return out


def test_every_ignored_key_is_documented() -> None:
    text = DOC.read_text()
    keys = set()
    for spec in (rules.PROFILE, rules.THRESHOLDS_FILE, rules.CLI_FILE, rules.FLAGS_FILE):
        _ignored(spec, keys)
    keys |= {k for k, v in rules.MEMORY_TEMPLATE_SECTIONS.items() if isinstance(v, Ignore)}
    missing = sorted(k for k in keys if k not in text)
    assert not missing, f"ignored keys not explained in {DOC.name}: {missing}"
