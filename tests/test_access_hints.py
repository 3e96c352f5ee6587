"""Every path the sidecar refuses for lying outside the allowed directories gets the same next step:
where to look (config.get) and how to widen them (BMAD_DATA_ALLOWED_DIRECTORIES). They used to
fall back to ACCESS_DENIED's default hint, written for refused statements ("the sidecar manages
memory, spill, extensions and file access itself"), which sent an agent to the wrong fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.client import RpcError, SidecarProcess


def test_a_path_outside_the_allowed_directories_says_how_to_allow_it(
    sidecar: SidecarProcess, data_dir: Path, tmp_path: Path
) -> None:
    sidecar.request("initialize", {"client": {"name": "test"}})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "in.csv").write_text("a\n1\n")
    (data_dir / "in.csv").write_text("a\n1\n")
    refused = {
        "query.run": {"sql": "SELECT 1 AS a", "output": {"path": str(outside / "out.parquet")}},
        "dataset.convert": {"input": str(outside / "in.csv"), "output": str(data_dir / "x.parquet")},
        "dataset.partition": {"input": str(data_dir / "in.csv"), "output_dir": str(outside / "parts"), "by": ["a"]},
        "bench.run": {"suite": "smoke", "sizes": ["1MB"], "report": {"path": str(outside / "report.md")}},
    }
    for method, params in refused.items():
        with pytest.raises(RpcError) as err:
            sidecar.request(method, params, timeout=120)
        assert err.value.code == "ACCESS_DENIED", method
        hint = err.value.data["hint"]
        assert "settings.allowed_directories" in hint and "BMAD_DATA_ALLOWED_DIRECTORIES" in hint, (method, hint)
        assert str(data_dir) in err.value.data["details"]["allowed_directories"], method
    assert not (outside / "parts").exists() and not (outside / "out.parquet").exists()
