"""Build hook: the wheel carries the expansion pack's four config files as the sidecar's built-in defaults.

Everything else about the package is declared in pyproject.toml. The files are copied from
expansion-pack/ at build time (one source of truth) into sidecar/defaults/ inside the wheel, where
sidecar.layout looks for them when no checkout is around. tests/test_install.py builds a wheel and
checks that an installed sidecar answers `initialize` from an empty directory with these defaults.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PACK = HERE / "expansion-pack"
# The pack files sidecar.config.pack.PACK_FILES names (its data/ and config/ YAML).
DEFAULT_FILES = ("data/*.yaml", "config/*.yaml")


class BuildWithDefaults(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "sidecar" / "defaults"
        if target.exists():
            shutil.rmtree(target)  # a stale copy from an earlier build must not survive
        copied = 0
        for pattern in DEFAULT_FILES:
            for source in sorted(PACK.glob(pattern)):
                dest = target / source.relative_to(PACK)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, dest)
                copied += 1
        if copied == 0:
            raise SystemExit(f"setup.py: no config files under {PACK}; build from a full checkout or sdist")


setup(cmdclass={"build_py": BuildWithDefaults})
