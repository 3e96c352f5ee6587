"""Where the sidecar finds its default pack and keeps its state: in a checkout, or installed as a wheel.

In a checkout the package sits beside `expansion-pack/`, and the pack and `<repo>/.bmad-data` are the
defaults, as they always were. An installed wheel has no checkout around it: it carries the pack's four
config files as `sidecar/defaults/` (copied there by setup.py at build time), and the project is the
directory it runs in, so relative paths in those files and the state directory are under the cwd.
tests/test_install.py checks the installed case from an empty directory.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "BUILTIN_PACK_DIR",
    "CHECKOUT_PACK_DIR",
    "PACKAGE_DIR",
    "REPO_ROOT",
    "default_pack_dir",
    "default_state_dir",
    "in_checkout",
    "is_builtin_pack",
    "project_root_of",
]

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
CHECKOUT_PACK_DIR = REPO_ROOT / "expansion-pack"
BUILTIN_PACK_DIR = PACKAGE_DIR / "defaults"


def in_checkout() -> bool:
    """True when the package runs from a source checkout (its expansion-pack/ beside it)."""
    return CHECKOUT_PACK_DIR.is_dir()


def default_pack_dir() -> Path:
    """The checkout's expansion-pack/, else the pack files the wheel carries."""
    return CHECKOUT_PACK_DIR if in_checkout() else BUILTIN_PACK_DIR


def is_builtin_pack(config_dir: str | Path) -> bool:
    return Path(config_dir).absolute() == BUILTIN_PACK_DIR


def project_root_of(config_dir: str | Path) -> Path:
    """What relative paths in a pack's files are relative to: the folder holding the pack, or, for the
    built-in pack inside site-packages, the directory the sidecar runs in."""
    return Path.cwd() if is_builtin_pack(config_dir) else Path(config_dir).absolute().parent


def default_state_dir() -> tuple[Path, str]:
    """The state directory (spill, jobs) and where it came from, for `config.get`'s sources."""
    if in_checkout():
        return REPO_ROOT / ".bmad-data", "auto: <repo>/.bmad-data"
    return Path.cwd() / ".bmad-data", "auto: <cwd>/.bmad-data (installed; no checkout)"
