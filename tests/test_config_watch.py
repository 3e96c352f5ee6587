"""Hot reload for real: files in tmp_path, edited, and the watcher's callbacks awaited (bounded)."""

from __future__ import annotations

import threading
from pathlib import Path

from sidecar.config import ConfigWatcher, Diagnostic, Pack

FLAGS_ON = "features:\n  duckdb_analytics:\n    enabled: true\n"
FLAGS_OFF = "features:\n  duckdb_analytics:\n    enabled: false\n"
BROKEN = "features:\n  duckdb_analytics:\n    enabled: [true\n"


class Recorder:
    """Collects callbacks and lets the test wait for the next one, at most `timeout` seconds."""

    def __init__(self) -> None:
        self.packs: list[Pack] = []
        self.errors: list[list[Diagnostic]] = []
        self.event = threading.Event()

    def on_change(self, pack: Pack) -> None:
        self.packs.append(pack)
        self.event.set()

    def on_error(self, diagnostics: list[Diagnostic]) -> None:
        self.errors.append(diagnostics)
        self.event.set()

    def wait(self, timeout: float = 5.0) -> bool:
        fired = self.event.wait(timeout)
        self.event.clear()
        return fired


def _pack_dir(tmp_path: Path) -> Path:
    root = tmp_path / "pack"
    (root / "config").mkdir(parents=True)
    (root / "config" / "feature-flags.yaml").write_text(FLAGS_ON)
    (root / "duckdb-cli-integration-config.yaml").write_text("cli_integration:\n  commands: {}\n")
    return root


def test_valid_edit_then_broken_edit_then_fix(tmp_path: Path) -> None:
    root = _pack_dir(tmp_path)
    flags_file = root / "config" / "feature-flags.yaml"
    rec = Recorder()
    with ConfigWatcher(root, rec.on_change, rec.on_error, env={}) as watcher:
        flags_file.write_text(FLAGS_OFF)
        assert rec.wait(), "no callback within 5 s after a valid edit"
        assert rec.packs and not rec.packs[-1].flags.state("duckdb_analytics").enabled

        flags_file.write_text(BROKEN)
        assert rec.wait(), "no callback within 5 s after a broken edit"
        assert rec.errors, "a broken edit must go to on_error"
        err = rec.errors[-1][0]
        assert err.file == str(flags_file) and err.line == 4 and "YAML syntax error" in err.message
        good_before = len(rec.packs)

        flags_file.write_text(FLAGS_ON)
        assert rec.wait(), "no callback within 5 s after the fix"
        assert len(rec.packs) == good_before + 1 and rec.packs[-1].flags.state("duckdb_analytics").enabled
        assert watcher.callback_failures == 0
    assert watcher._thread is None


def test_non_yaml_files_are_ignored_and_stop_is_prompt(tmp_path: Path) -> None:
    root = _pack_dir(tmp_path)
    rec = Recorder()
    watcher = ConfigWatcher(root, rec.on_change, rec.on_error, env={})
    watcher.start()
    try:
        (root / "notes.txt").write_text("not config")
        assert not rec.wait(timeout=1.0)
        (root / "config" / "feature-flags.yaml").write_text(FLAGS_OFF)
        assert rec.wait()
    finally:
        watcher.stop(timeout=5.0)
    assert watcher.reloads >= 1
