"""The sidecar as a user installs it: `pip wheel .` from the checkout, the wheel into a fresh venv.

Built once per module: a copy of the checkout (what a fresh clone holds: no .venv, no build/ left
over), `pip wheel --no-deps` with pip's ordinary build isolation, a new venv without system site
packages, the hash-locked dependencies from requirements.lock (pip's cache makes this seconds), then
the wheel itself without --no-deps, so pip checks that its declared dependencies are satisfied by the
locked versions. The installed console script then runs from an empty directory with no PYTHONPATH
and no BMAD_DATA_* variables: nothing of the checkout can leak in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path
from typing import Any

import pytest

from sidecar.config.pack import PACK_FILES
from sidecar.layout import CHECKOUT_PACK_DIR, REPO_ROOT

pytestmark = pytest.mark.timeout(600)

# What a fresh clone does not have, or what the build must not see.
NOT_IN_A_CLONE = (
    ".git",
    ".venv",
    "node_modules",
    "build",
    "dist",
    ".bmad-data",
    ".state",
    "tmp",
    "__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".hypothesis",
    ".ruff_cache",
    ".mypy_cache",
)


def _bin(env_dir: Path, name: str) -> Path:
    return env_dir / ("Scripts" if os.name == "nt" else "bin") / name


def _pip(python: Path, *args: str, cwd: Path | None = None) -> None:
    done = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"pip {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("clone") / "bmad-data"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(*NOT_IN_A_CLONE))
    out = tmp_path_factory.mktemp("wheelhouse")
    _pip(Path(sys.executable), "wheel", "--no-deps", "--wheel-dir", str(out), str(source))
    (built,) = out.glob("bmad_data_sidecar-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the locked dependencies and the wheel; returns the venv directory."""
    env_dir = tmp_path_factory.mktemp("venv") / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    python = _bin(env_dir, "python")
    _pip(python, "install", "--quiet", "--require-hashes", "-r", str(REPO_ROOT / "requirements.lock"))
    _pip(python, "install", "--quiet", str(wheel))
    return env_dir


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("BMAD_DATA_")}


def _session(command: list[str], cwd: Path, requests: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """Send the requests (then shutdown and exit) over real stdio; return the answers in order."""
    lines = [
        json.dumps({"jsonrpc": "2.0", "id": i, "method": m, "params": p})
        for i, (m, p) in enumerate(requests, 1)
    ]
    lines.append(json.dumps({"jsonrpc": "2.0", "id": len(requests) + 1, "method": "shutdown"}))
    lines.append(json.dumps({"jsonrpc": "2.0", "method": "exit"}))
    done = subprocess.run(
        command,
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_clean_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    by_id = {a["id"]: a for a in answers if "id" in a}
    missing = [i for i in range(1, len(requests) + 1) if i not in by_id]
    assert not missing, f"no answer to requests {missing}; stderr:\n{done.stderr[-3000:]}"
    return [by_id[i] for i in range(1, len(requests) + 1)]


def test_the_wheel_carries_the_sidecar_and_the_pack_configs_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"sidecar"}, top
    assert not [n for n in names if n.startswith(("tests/", "schemas/", "bmad_bridge/"))]
    assert "sidecar/workers/child.py" in names  # a namespace subpackage must not be left out
    shipped = sorted(n.removeprefix("sidecar/defaults/") for n in names if n.startswith("sidecar/defaults/"))
    assert shipped == sorted(PACK_FILES.values())
    with zipfile.ZipFile(wheel) as z:
        for rel in PACK_FILES.values():
            assert z.read(f"sidecar/defaults/{rel}") == (CHECKOUT_PACK_DIR / rel).read_bytes(), rel
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "bmad-data-sidecar = sidecar.server:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_installed_console_script_answers_from_an_empty_directory(
    installed: Path, tmp_path: Path
) -> None:
    project = tmp_path / "empty-project"
    project.mkdir()
    init, answer, config = _session(
        [str(_bin(installed, "bmad-data-sidecar"))],
        project,
        [
            ("initialize", {"client": {"name": "test_install"}}),
            ("query.run", {"sql": "SELECT 42 AS n"}),
            ("config.get", {}),
        ],
    )
    result = init["result"]
    assert result["server"]["name"] == "bmad-data-sidecar", result
    errors = [d for d in result["diagnostics"] if d["severity"] == "error"]
    assert errors == [], errors
    assert answer["result"]["rows"] == [[42]], answer  # a real worker process, started from the wheel
    got = config["result"]
    site = Path(got["config_dir"])
    assert site.parts[-2:] == ("sidecar", "defaults") and installed in site.parents, got["config_dir"]
    assert Path(got["settings"]["temp_directory"]).is_relative_to(project.resolve()), got["settings"]
    assert not (Path(got["config_dir"]).parent / ".bmad-data").exists()  # nothing written into site-packages


def test_the_installed_module_runs_as_python_dash_m_sidecar(installed: Path, tmp_path: Path) -> None:
    (init,) = _session(
        [str(_bin(installed, "python")), "-P", "-m", "sidecar"], tmp_path, [("initialize", {})]
    )
    assert init["result"]["server"]["name"] == "bmad-data-sidecar"
