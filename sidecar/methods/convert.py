"""`dataset.convert`: CSV or JSON (or Parquet) to Parquet, in bounded memory, resumably.

Each input file becomes one Parquet file, written by a supervised worker as a streaming
`COPY` (DuckDB reads and writes chunk by chunk with insertion order off, so memory stays
bounded whatever the file's size) and atomically: an output file exists only once it is
complete. That makes the conversion resumable for free: run the same request again after a
failure or a kill, and files whose output already exists are skipped (and reported so).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from sidecar.engine.analyze import format_of
from sidecar.jobs.types import OutputSpec, QuerySpec
from sidecar.engine.outputs import require_inside
from sidecar.errors import InputError, InternalError
from sidecar.methods import registry
from sidecar.methods.progress import progress_listener
from sidecar.protocol.dispatcher import Call

__all__ = ["READERS", "ConvertParams", "ConvertResult", "ConvertedFile", "input_files"]

READERS = {"csv": "read_csv", "json": "read_json", "parquet": "read_parquet"}


class ConvertParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    input: str
    """A CSV, JSON (NDJSON) or Parquet file, a glob, or a directory of them."""
    output: str
    """The Parquet file to write (one input), or the directory to write into (several inputs)."""
    format: Literal["parquet"] = "parquet"
    overwrite: bool = False
    """Replace outputs that exist; without it, existing outputs are kept and the file is skipped."""
    timeout_ms: Annotated[int, msgspec.Meta(gt=0)] | None = None
    settings: dict[str, Any] | None = None


class ConvertedFile(msgspec.Struct, frozen=True):
    input: str
    output: str
    rows: int | None
    """Rows written; null when the file was skipped."""
    bytes: int
    skipped: bool
    """The output existed already (a resumed conversion) and `overwrite` was not set."""


class ConvertResult(msgspec.Struct, frozen=True):
    files: list[ConvertedFile]
    rows: int
    bytes: int
    converted: int
    skipped: int


def input_files(pattern: str) -> list[str]:
    path = os.path.expanduser(pattern)
    if os.path.isdir(path):
        found = [p for p in glob.glob(os.path.join(path, "**", "*"), recursive=True) if os.path.isfile(p)]
    elif any(ch in path for ch in "*?["):
        found = [p for p in glob.glob(path, recursive=True) if os.path.isfile(p)]
    else:
        if not os.path.isfile(path):
            raise InputError(f"no such file: '{pattern}'", hint="Give a file, a glob or a directory.")
        found = [path]
    files = sorted(os.path.abspath(p) for p in found if format_of(p) is not None)
    if not files:
        raise InputError(
            f"'{pattern}' holds no CSV, JSON or Parquet files",
            hint="Data files are recognised by extension: .csv, .tsv, .txt, .json, .jsonl, .ndjson, .parquet.",
        )
    return files


def _targets(files: list[str], output: str) -> list[tuple[str, str]]:
    out = Path(output).expanduser().resolve()
    if len(files) == 1 and not out.is_dir():
        return [(files[0], str(out))]
    out.mkdir(parents=True, exist_ok=True)
    root = os.path.commonpath([os.path.dirname(f) for f in files])
    pairs = []
    for file in files:
        relative = Path(os.path.relpath(file, root))
        name = relative.name.split(".")[0] + ".parquet"
        target = out / relative.parent / name
        target.parent.mkdir(parents=True, exist_ok=True)
        pairs.append((file, str(target)))
    if len({t for _, t in pairs}) != len(pairs):
        raise InputError(
            "two inputs would write the same output file",
            hint="Convert them into separate directories, or rename one of them.",
        )
    return pairs


@registry.method("dataset.convert", params=ConvertParams, result=ConvertResult)
def convert(call: Call, p: ConvertParams) -> ConvertResult:
    """Convert CSV/JSON/Parquet files to Parquet, one output per input, atomically and resumably."""
    session = call.session
    session.require()
    settings = session.settings_for(p.settings)
    files = input_files(p.input)
    for file in files:
        require_inside(Path(file), list(settings.allowed_directories), f"input '{file}'")
    listener = progress_listener(call)
    done: list[ConvertedFile] = []
    for file, target in _targets(files, p.output):
        call.raise_if_cancelled()
        if os.path.exists(target) and not p.overwrite:
            done.append(ConvertedFile(file, target, None, os.path.getsize(target), skipped=True))
            continue
        fmt = format_of(file)
        literal = "'" + file.replace("'", "''") + "'"
        spec = QuerySpec(
            sql=f"SELECT * FROM {READERS[fmt or 'csv']}({literal})",
            database=settings.database_path,
            max_rows=0,
            output=OutputSpec(target, "parquet", overwrite=p.overwrite),
            timeout_ms=p.timeout_ms if p.timeout_ms is not None else settings.timeout_ms,
        )
        result = session.engine.run_query(spec, settings, call, listener)
        output = result.output
        if output is None:
            raise InternalError("a conversion wrote no output")
        done.append(ConvertedFile(file, output.path, output.rows, output.bytes, skipped=False))
    written = [f for f in done if not f.skipped]
    return ConvertResult(
        files=done,
        rows=sum(f.rows or 0 for f in written),
        bytes=sum(f.bytes for f in done),
        converted=len(written),
        skipped=len(done) - len(written),
    )
