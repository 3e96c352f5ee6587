"""`dataset.analyze`: a fast profile of a CSV, Parquet or JSON dataset."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from pathlib import Path

from sidecar.engine.analyze import CsvOptions, DatasetAnalysis
from sidecar.workers.protocol import AnalyzeSpec
from sidecar.methods import registry
from sidecar.methods.progress import progress_listener
from sidecar.protocol.dispatcher import Call

__all__ = ["AnalyzeParams"]


class AnalyzeParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    path: str
    """A file, a glob, or a directory of CSV, Parquet or JSON files."""
    sample_rows: Annotated[int, msgspec.Meta(gt=0)] | None = None
    """Rows to sample for the estimated figures (default chosen for interactive speed)."""
    exact: bool = False
    """Scan everything for exact figures (slower); the result says which figures are exact."""
    union_by_name: bool = False
    """Read the files' columns by name, as `read_parquet([...], union_by_name = true)` does. By
    default, as a query on a glob does, every file is read with the first file's columns."""
    csv: CsvOptions | None = None
    """CSV reader options (read_csv's: delimiter, header, quote, escape, skip, encoding,
    ignore_errors, null_padding, ...); any not given is sniffed, and the result's `csv` says how."""
    timeout_ms: Annotated[int, msgspec.Meta(gt=0)] | None = None
    settings: dict[str, Any] | None = None


@registry.method("dataset.analyze", params=AnalyzeParams, result=DatasetAnalysis)
def analyze(call: Call, p: AnalyzeParams) -> DatasetAnalysis:
    """Profile a dataset: rows, bytes, and per column type, nulls, distinct, min, max, mean, std."""
    session = call.session
    session.require()
    settings = session.settings_for(p.settings)
    spec = AnalyzeSpec(
        path=str(Path(p.path).expanduser()),
        sample_rows=p.sample_rows,
        exact=p.exact,
        union_by_name=p.union_by_name,
        csv=p.csv,
        timeout_ms=p.timeout_ms if p.timeout_ms is not None else settings.timeout_ms,
    )
    return session.engine.analyze(spec, settings, call, progress_listener(call))
