"""`scaling_triggers.executor_scaling` in the thresholds file: read into the `hand_off` setting with
its source line (off by default), refused at its line with the closest name, and never an alert."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.config import load_pack, resolve_settings
from sidecar.config.settings import HandOff
from sidecar.monitor.config import monitor_config
from sidecar.resources import detect_resources

THRESHOLDS = "data/resource-thresholds-config.yaml"
DOC = Path(__file__).parents[1] / "docs" / "architecture" / "distributed-execution.md"
COMMENTED = "# scaling_triggers:"


def _uncomment_shipped(pack_dir: Path) -> tuple[Path, int]:
    """The shipped file with its commented hand-off group switched on; the line of `executor_scaling:`."""
    path = pack_dir / THRESHOLDS
    lines = path.read_text().splitlines()
    start = lines.index(COMMENTED)
    path.write_text("\n".join(lines[:start] + [line[2:] for line in lines[start:]]) + "\n")
    return path, start + 2


def _with_group(pack_dir: Path, group: str) -> Path:
    path = pack_dir / THRESHOLDS
    path.write_text(path.read_text() + "\nscaling_triggers:\n  executor_scaling:\n" + group)
    return path


def test_it_is_off_by_default(pack_dir: Path, tmp_path: Path) -> None:
    pack = load_pack(pack_dir, env={})
    assert pack.ok and pack.thresholds is not None and pack.thresholds.hand_off is None
    settings = resolve_settings(pack, detect_resources(tmp_path), env={})
    assert settings.hand_off is None and settings.sources["hand_off"].startswith("auto: off")


def test_the_shipped_group_uncommented_is_the_setting_with_its_line(pack_dir: Path, tmp_path: Path) -> None:
    path, line = _uncomment_shipped(pack_dir)
    pack = load_pack(pack_dir, env={})
    assert pack.ok, pack.errors
    settings = resolve_settings(pack, detect_resources(tmp_path), env={})
    assert settings.hand_off == HandOff(max_local_parts=16, max_machine_percent=100.0, address="head:6379")
    assert settings.sources["hand_off"] == f"file:{path}:{line}"
    # a rule for the runner, not an alert: the monitor makes no rule of it and says nothing about it
    config = monitor_config(pack, str(tmp_path / "state"))
    assert not [r.name for r in config.rules.rules if r.name.startswith("executor_scaling")]
    assert not [d for d in config.diagnostics if "executor_scaling" in d.path]


def test_the_documented_group_is_the_shipped_one(pack_dir: Path) -> None:
    text = DOC.read_text()
    section = text[text.index("## Handing jobs to Ray automatically") :]
    block = section[section.index("```yaml\n") + 8 : section.index("```\n", section.index("```yaml\n") + 8)]
    path = pack_dir / THRESHOLDS
    path.write_text(path.read_text() + "\n" + block)
    pack = load_pack(pack_dir, env={})
    assert pack.ok and pack.thresholds is not None, pack.errors
    assert pack.thresholds.hand_off == HandOff(max_local_parts=16, max_machine_percent=100.0, address="head:6379")


def test_the_smallest_number_of_a_measure_wins_and_ray_alone_is_a_local_head(pack_dir: Path) -> None:
    _with_group(
        pack_dir,
        "    hand_off_triggers:\n"
        "      - {condition: split_parts > 8, action: run_on_ray, address: ray}\n"
        "      - {condition: split_parts > 4, action: run_on_ray}\n",
    )
    pack = load_pack(pack_dir, env={})
    assert pack.thresholds is not None
    assert pack.thresholds.hand_off == HandOff(max_local_parts=4, max_machine_percent=None, address=None)


@pytest.mark.parametrize(
    ("trigger", "at", "path_end", "fragment"),
    [
        ("{condition: split_part > 4, action: run_on_ray}", "split_part", "condition",
         "unknown measure 'split_part'; did you mean 'split_parts'?"),
        ("{condition: split_parts > 4, action: run_on_rays}", "run_on_rays", "action",
         "unknown hand-off action 'run_on_rays'; did you mean 'run_on_ray'?"),
        ("{condition: memory_percent > 80, action: run_on_ray}", "memory_percent", "condition",
         "unknown measure 'memory_percent'"),
        ("{condition: split_parts >= 4, action: run_on_ray}", "split_parts", "condition",
         "write 'split_parts > N', not '>='"),
        ("{condition: split_parts > 4, action: run_on_ray, adress: ray}", "adress", "adress",
         "unknown key 'adress'; did you mean 'address'?"),
        ("{condition: split_parts > 4, action: run_on_ray, address: local}", "local", "address",
         "not a Ray cluster"),
    ],
)
def test_a_bad_trigger_is_an_error_at_its_line_and_the_rule_is_off(
    pack_dir: Path, trigger: str, at: str, path_end: str, fragment: str
) -> None:
    item = f"      - {trigger}"
    path = _with_group(pack_dir, f"    hand_off_triggers:\n{item}\n")
    line = len(path.read_text().splitlines())
    pack = load_pack(pack_dir, env={})
    errors = pack.errors
    assert len(errors) == 1, errors
    error = errors[0]
    assert (error.file, error.line, error.column) == (str(path), line, item.index(at) + 1), error
    assert error.path == f"scaling_triggers.executor_scaling.hand_off_triggers[0].{path_end}"
    assert fragment in error.message
    assert pack.thresholds is not None and pack.thresholds.hand_off is None


def test_two_clusters_are_refused(pack_dir: Path) -> None:
    _with_group(
        pack_dir,
        "    hand_off_triggers:\n"
        "      - {condition: split_parts > 8, action: run_on_ray, address: 'ray:a:6379'}\n"
        "      - {condition: estimate_machine_percent > 90, action: run_on_ray, address: 'ray:b:6379'}\n",
    )
    errors = load_pack(pack_dir, env={}).errors
    assert len(errors) == 1 and "name 2 Ray clusters; one sidecar joins one" in errors[0].message, errors
