"""The default Parquet codec of an `output` comes from the config (`output.compression` in a profile,
`output_compression` in overrides or BMAD_DATA_OUTPUT_COMPRESSION), DuckDB's own snappy when nothing
names one; a request's `output.compression` beats them all (issue 11)."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import duckdb
import pytest

from sidecar.client import SidecarProcess
from sidecar.config import load_pack, resolve_settings
from sidecar.config.rules import PARQUET_CODECS
from sidecar.errors import ConfigInvalid, InvalidParams
from sidecar.jobs.types import ParquetCompression
from sidecar.resources import detect_resources


def test_the_config_knows_the_codecs_a_request_may_name() -> None:
    assert PARQUET_CODECS == get_args(ParquetCompression)


def _pack(tmp_path: Path, profile_yaml: str) -> object:
    data = tmp_path / "pack" / "data"
    data.mkdir(parents=True)
    (data / "duckdb-memory-config-templates.yaml").write_text(profile_yaml)
    return load_pack(data.parent, env={})


def test_the_default_codec_is_duckdbs_and_each_layer_names_its_source(tmp_path: Path) -> None:
    pack = _pack(tmp_path, "small:\n  duckdb_config:\n    threads: 1\n  output:\n    compression: zstd\n")
    resources = detect_resources(tmp_path)
    auto = resolve_settings(pack, resources, env={})
    assert auto.output_compression == "snappy" and auto.sources["output_compression"].startswith("auto")
    profile = resolve_settings(pack, resources, profile="small", env={})
    assert profile.output_compression == "zstd"
    assert profile.sources["output_compression"].endswith(":5 (profile small)")
    env = resolve_settings(pack, resources, profile="small", env={"BMAD_DATA_OUTPUT_COMPRESSION": "gzip"})
    assert (env.output_compression, env.sources["output_compression"]) == (
        "gzip",
        "env:BMAD_DATA_OUTPUT_COMPRESSION",
    )
    given = {"output_compression": "lz4"}
    overrides = resolve_settings(pack, resources, profile="small", overrides=given, env={})
    assert overrides.output_compression == "lz4" and overrides.sources["output_compression"] == "overrides"


def test_a_codec_duckdb_does_not_write_is_refused_with_the_choices(tmp_path: Path) -> None:
    pack = _pack(tmp_path, "small:\n  duckdb_config:\n    threads: 1\n")
    resources = detect_resources(tmp_path)
    with pytest.raises(InvalidParams) as bad:
        resolve_settings(pack, resources, overrides={"output_compression": "zip"}, env={})
    assert "one of snappy, zstd" in (bad.value.hint or "")
    with pytest.raises(ConfigInvalid):
        resolve_settings(pack, resources, env={"BMAD_DATA_OUTPUT_COMPRESSION": "zip"})


def _codecs(path: Path) -> set[str]:
    query = f"SELECT DISTINCT compression FROM parquet_metadata('{path}')"
    return {row[0] for row in duckdb.connect().execute(query).fetchall()}


@pytest.mark.timeout(60)
def test_the_configured_codec_reaches_the_file_and_the_request_beats_it(
    start_sidecar, data_dir: Path
) -> None:
    sidecar: SidecarProcess = start_sidecar(BMAD_DATA_OUTPUT_COMPRESSION="zstd")
    sql = "SELECT i, i % 7 AS k FROM range(50000) t(i)"
    configured, asked = data_dir / "configured.parquet", data_dir / "asked.parquet"
    sidecar.request("query.run", {"sql": sql, "output": {"path": str(configured)}})
    sidecar.request("query.run", {"sql": sql, "output": {"path": str(asked), "compression": "snappy"}})
    assert _codecs(configured) == {"ZSTD"}
    assert _codecs(asked) == {"SNAPPY"}
    settings = sidecar.request("config.get", {})
    assert "BMAD_DATA_OUTPUT_COMPRESSION" in str(settings)
    sidecar.close()
