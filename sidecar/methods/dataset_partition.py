"""`dataset.partition`: a CSV/JSON/Parquet input of any size as a Hive-partitioned Parquet dataset.

(Not to be confused with `sidecar.partition`, the planner that splits one query into parts.)

Each input file is one supervised job: a streaming `COPY ... PARTITION_BY` in bounded memory
(DuckDB keeps at most `partitioned_write_max_open_files` = 100 files open and flushes every
524,288 rows; hash bucketing bounds the number of partitions from the start). A job writes
into a staging directory inside `output_dir`; only when it has finished are its files moved
into place and a done-marker written. So a failed or killed run leaves nothing half-visible,
and re-sending the same request resumes: inputs with a done-marker are skipped.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from sidecar.engine.analyze import format_of
from sidecar.jobs.types import QuerySpec
from sidecar.engine.outputs import require_inside
from sidecar.errors import InputError, InvalidParams
from sidecar.methods import registry
from sidecar.methods.convert import READERS, input_files
from sidecar.methods.progress import progress_listener
from sidecar.protocol.dispatcher import Call

__all__ = ["PartitionParams", "PartitionResult"]

STAGING_PREFIX = ".bmad-staging-"
DONE_DIR = ".bmad-done"
Column = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class PartitionParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    input: str
    """A CSV, JSON (NDJSON) or Parquet file, a glob, or a directory of them."""
    output_dir: str
    by: list[Column] | None = None
    """Hive partitions by these columns' values (col=value/ directories)."""
    hash_by: list[Column] | None = None
    """Hive partitions by a hash of these columns into `buckets` (bucket=N/ directories)."""
    buckets: Annotated[int, msgspec.Meta(ge=2, le=4096)] = 16
    rows_per_file: Annotated[int, msgspec.Meta(ge=1000)] | None = None
    """No partition columns: files of about this many rows each."""
    format: Literal["parquet"] = "parquet"
    timeout_ms: Annotated[int, msgspec.Meta(gt=0)] | None = None
    settings: dict[str, Any] | None = None


class PartitionResult(msgspec.Struct, frozen=True):
    output_dir: str
    inputs: int
    written: int
    """Inputs partitioned by this request."""
    skipped: int
    """Inputs finished by an earlier run (a resumed request)."""
    files: int
    bytes: int
    rows: int


def _layout(p: PartitionParams) -> tuple[str, str]:
    """(the SELECT list to read, the COPY options) for the partitioning asked for."""
    chosen = [name for name, value in (("by", p.by), ("hash_by", p.hash_by), ("rows_per_file", p.rows_per_file)) if value]
    if len(chosen) != 1:
        raise InvalidParams(
            "give exactly one of `by`, `hash_by` (with `buckets`) or `rows_per_file`",
            hint="`by` for columns with few values you filter on; `hash_by` for join or group keys; "
            "`rows_per_file` to cut one big file into files of a size.",
            details={"given": chosen},
        )
    if p.by:
        return "*", f"PARTITION_BY ({', '.join(p.by)})"
    if p.hash_by:
        keys = ", ".join(p.hash_by)
        return f"*, hash({keys}) % {p.buckets} AS bucket", "PARTITION_BY (bucket)"
    return "*", f"ROW_GROUP_SIZE {p.rows_per_file}, ROW_GROUPS_PER_FILE 1"


def _files(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, names in os.walk(root) for f in names if f.endswith(".parquet")]


@registry.method("dataset.partition", params=PartitionParams, result=PartitionResult)
def partition(call: Call, p: PartitionParams) -> PartitionResult:
    """Write an input as a Hive-partitioned Parquet dataset in bounded memory, resumably."""
    session = call.session
    session.require()
    settings = session.settings_for(p.settings)
    select, options = _layout(p)
    files = input_files(p.input)
    out = Path(p.output_dir).expanduser().resolve()
    allowed = list(settings.allowed_directories)
    for path in [*files, str(out)]:
        require_inside(Path(path), allowed, f"'{path}'")
    if out.exists() and not out.is_dir():
        raise InputError(f"output_dir '{out}' is a file", hint="Give a directory (it is created if missing).")
    out.mkdir(parents=True, exist_ok=True)
    for leftover in out.glob(STAGING_PREFIX + "*"):  # what an interrupted run left: never visible
        shutil.rmtree(leftover, ignore_errors=True)
    done_dir = out / DONE_DIR
    done_dir.mkdir(exist_ok=True)
    listener = progress_listener(call)
    written = skipped = rows = 0
    for index, file in enumerate(files):
        call.raise_if_cancelled()
        marker = done_dir / f"{index:05d}-{Path(file).name}.done"
        if marker.exists():
            skipped += 1
            continue
        staging = out / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
        try:
            literal = "'" + file.replace("'", "''") + "'"
            target = "'" + str(staging).replace("'", "''") + "'"
            reader = READERS[format_of(file) or "csv"]
            pattern = f"p{index:05d}_{{i}}"
            spec = QuerySpec(
                sql=f"COPY (SELECT {select} FROM {reader}({literal})) TO {target} "
                f"(FORMAT parquet, {options}, FILENAME_PATTERN '{pattern}')",
                database=settings.database_path,
                max_rows=10,
                timeout_ms=p.timeout_ms if p.timeout_ms is not None else settings.timeout_ms,
            )
            result = session.engine.run_query(spec, settings, call, listener)
            rows += int(result.rows[0][0]) if result.rows else 0
            for produced in _files(staging):
                final = out / produced.relative_to(staging)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(produced, final)
            marker.write_text(file)
            written += 1
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    produced_files = [f for f in _files(out) if DONE_DIR not in f.parts]
    return PartitionResult(
        output_dir=str(out),
        inputs=len(files),
        written=written,
        skipped=skipped,
        files=len(produced_files),
        bytes=sum(f.stat().st_size for f in produced_files),
        rows=rows,
    )
