"""JSON Schemas of everything that crosses the wire, generated from the msgspec types.

    python -m sidecar.schemas            write schemas/ (the committed copy)
    python -m sidecar.schemas --check    exit 1, listing the files that differ from the types

The files in schemas/ are never edited by hand: each is `msgspec.json.schema` of a registered
method's params or result, a notification, the error object or a config file's type. Where the
declared type cannot describe the wire (a union msgspec cannot express, an `Any` whose real type
is known, loader bookkeeping that never appears in a file), `WIRE_TYPES` and `CONFIG_FILES`
say so once, with the reason; an entry whose field has since been typed properly fails the
generation, so it cannot outlive its cause. `validate` checks a value against the subset of
JSON Schema that msgspec emits, so tests (and the bridge's tests) need no extra dependency.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import operator
import sys
import types
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal, NamedTuple, Union, get_args, get_origin

import msgspec

from sidecar.schema_check import SchemaError, validate


__all__ = [
    "SCHEMA_DIR",
    "WIRE_TYPES",
    "CONFIG_FILES",
    "NOTIFICATIONS",
    "SchemaError",
    "build",
    "write",
    "drifted",
    "untyped_fields",
    "validate",
    "main",
]

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
PROGRESS_TOKEN = {
    "anyOf": [{"type": "string"}, {"type": "integer"}],
    "description": "Ask for `$/progress` notifications carrying this token (every method accepts it).",
}


class WireType(NamedTuple):
    """A field whose declared type is not the best description of what is sent."""

    owner: str
    field: str
    declared: Any
    wire: Any
    why: str


WIRE_TYPES: tuple[WireType, ...] = ()
"""Each field's declared type, and the type its schema is generated from instead."""

CONFIG_FILES: dict[str, str] = {
    "memory_templates": "MemoryTemplates",
    "thresholds": "ResourceThresholds",
    "cli": "CliIntegration",
    "feature_flags": "FeatureFlagsFile",
}
"""Pack role (sidecar.config.PACK_FILES) -> its type in sidecar.config.schema."""
CONFIG_BOOKKEEPING = ("path", "positions")
"""Fields the loader adds to each file's Struct (where it was read, the line and column of each key)."""

NOTIFICATIONS: dict[str, tuple[str, str]] = {
    "$/progress": ("progress", "ProgressParams"),
    "$/cancelRequest": ("cancelRequest", "CancelParams"),
    "config/changed": ("config.changed", "ConfigChangedParams"),
    "config/error": ("config.error", "ConfigErrorParams"),
    "monitor/metrics": ("monitor.metrics", "MonitorMetricsParams"),
    "monitor/alert": ("monitor.alert", "MonitorAlertParams"),
}
"""Notification -> (file stem under notifications/, its params type in sidecar.protocol.messages)."""


# -- declared types -> wire types ---------------------------------------------------------


class _Rewriter:
    """Rebuilds Structs with their wire types (and without dropped fields), everywhere they occur."""

    def __init__(self, retype: dict[tuple[str, str], WireType], drop: dict[str, tuple[str, ...]]) -> None:
        self.retype = retype
        self.drop = drop
        self.used: set[tuple[str, str]] = set()
        self._memo: dict[type, type] = {}

    def type(self, tp: Any) -> Any:
        origin = get_origin(tp)
        if origin is None:
            if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
                return self.struct(tp)
            return tp
        args = get_args(tp)
        if origin is Annotated:
            return Annotated[(self.type(args[0]), *args[1:])]  # type: ignore[valid-type]
        if origin is Literal:
            return tp
        new = tuple(a if a is Ellipsis else self.type(a) for a in args)
        if new == args:
            return tp
        if origin in (Union, types.UnionType):
            return functools.reduce(operator.or_, new)
        return origin[new]

    def struct(self, cls: type[msgspec.Struct]) -> type[msgspec.Struct]:
        if cls in self._memo:
            return self._memo[cls]
        self._memo[cls] = cls  # a self-referencing Struct keeps its declared shape
        fields: list[Any] = []
        changed = False
        for f in msgspec.structs.fields(cls):
            if f.encode_name != f.name:
                raise SchemaError(f"{cls.__name__}.{f.name}: renamed fields are not supported")
            if f.name in self.drop.get(cls.__name__, ()):
                changed = True
                continue
            key = (cls.__name__, f.name)
            tp = f.type
            if key in self.retype:
                override = self.retype[key]
                if tp != override.declared:
                    raise SchemaError(
                        f"{cls.__name__}.{f.name} is now typed {tp!r}, not {override.declared!r}: "
                        "remove its entry from WIRE_TYPES in sidecar/schemas.py"
                    )
                self.used.add(key)
                note = f"the schema of {key[0]}.{key[1]}, not its declared type: {override.why}"
                tp = Annotated[override.wire, msgspec.Meta(extra_json_schema={"$comment": note})]
            new = self.type(tp)
            changed = changed or new is not f.type
            if f.default is not msgspec.NODEFAULT:
                fields.append((f.name, new, f.default))
            elif f.default_factory is not msgspec.NODEFAULT:
                fields.append((f.name, new, msgspec.field(default_factory=f.default_factory)))
            else:
                fields.append((f.name, new))
        if not changed:
            return cls
        config = cls.__struct_config__
        if config.tag is not None:
            raise SchemaError(f"{cls.__name__}: tagged Structs are not supported by the rewriter")
        rebuilt = msgspec.defstruct(
            cls.__name__,
            fields,
            kw_only=True,
            forbid_unknown_fields=config.forbid_unknown_fields,
            module=cls.__module__,
        )
        rebuilt.__doc__ = cls.__doc__
        self._memo[cls] = rebuilt
        return rebuilt


# -- the set of schema files --------------------------------------------------------------


class _Entry(NamedTuple):
    path: str
    title: str
    description: str
    type: Any
    is_params: bool = False


def _entries() -> Iterator[_Entry]:
    from sidecar.config import schema as config_schema
    from sidecar.config.pack import PACK_FILES
    from sidecar.methods import load_all
    from sidecar.protocol import messages

    for name, spec in sorted(load_all().methods.items()):
        params_doc = f"`params` of {name}: {spec.summary}"
        if spec.params is None:
            params_doc += " It takes no parameters: `params` may be omitted, null or {}."
        yield _Entry(f"methods/{name}.params.json", f"{name} params", params_doc, spec.params, is_params=True)
        result_doc = f"`result` of {name}: {spec.summary}"
        yield _Entry(f"methods/{name}.result.json", f"{name} result", result_doc, spec.result)
    for method, (stem, type_name) in NOTIFICATIONS.items():
        cls = getattr(messages, type_name)
        yield _Entry(f"notifications/{stem}.json", f"{method} params", _doc(cls), cls)
    yield _Entry(
        "protocol/error.json",
        "error",
        "The `error` member of every error answer; `data.code` is stable.",
        messages.ErrorObject,
    )
    for role, type_name in CONFIG_FILES.items():
        stem = Path(PACK_FILES[role]).stem
        yield _Entry(
            f"config/{stem}.json",
            PACK_FILES[role],
            f"{PACK_FILES[role]} after validation: sizes in bytes, thresholds as fractions of 1, "
            "durations in ms, memory_limit split into text/bytes/share. The YAML itself may use unit "
            "strings and percentages; `config.validate` checks it with file:line diagnostics.",
            getattr(config_schema, type_name),
        )


def _doc(cls: type) -> str:
    return inspect.cleandoc(cls.__doc__ or "").splitlines()[0] if cls.__doc__ else ""


def _clean_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: inspect.cleandoc(v) if k == "description" and isinstance(v, str) else _clean_descriptions(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_clean_descriptions(v) for v in node]
    return node


def _schema(entry: _Entry, rewriter: _Rewriter) -> dict[str, Any]:
    if entry.is_params and entry.type is None:
        body: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
    else:
        try:
            body = msgspec.json.schema(rewriter.type(entry.type))
        except TypeError as exc:
            raise SchemaError(f"{entry.path}: msgspec cannot describe {entry.type!r}: {exc}") from exc
    body = _clean_descriptions(body)
    if entry.is_params:
        target = body["$defs"][body["$ref"].rsplit("/", 1)[1]] if "$ref" in body else body
        target["properties"]["progress_token"] = PROGRESS_TOKEN
    return {"$schema": DIALECT, "title": entry.title, "description": entry.description, **body}


def _render(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def build() -> dict[str, str]:
    """Every schema file, relative path -> text (sorted keys, 2-space indent, trailing newline)."""
    retype = {(w.owner, w.field): w for w in WIRE_TYPES}
    rewriter = _Rewriter(retype, {name: CONFIG_BOOKKEEPING for name in CONFIG_FILES.values()})
    files: dict[str, str] = {}
    index: dict[str, Any] = {"methods": {}, "notifications": {}, "config": {}}
    for entry in _entries():
        files[entry.path] = _render(_schema(entry, rewriter))
        if entry.path.startswith("methods/"):
            method, kind = entry.path[len("methods/") :].rsplit(".", 2)[:2]
            index["methods"].setdefault(method, {})[kind] = entry.path
        elif entry.path.startswith("notifications/"):
            index["notifications"][entry.title.rsplit(" ", 1)[0]] = entry.path
        elif entry.path.startswith("config/"):
            index["config"][entry.title] = entry.path
        else:
            index[entry.title] = entry.path
    unused = sorted(set(retype) - rewriter.used)
    if unused:
        raise SchemaError(f"WIRE_TYPES entries for fields no schema reaches: {unused}; remove them")
    files["index.json"] = _render(index)
    return files


def write(directory: Path = SCHEMA_DIR) -> list[str]:
    """Write the schemas into `directory`, removing stale .json files; returns what changed."""
    files = build()
    changed = drifted(directory, files)
    for rel, text in files.items():
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
    for stale in _existing(directory) - set(files):
        (directory / stale).unlink()
    return changed


def _existing(directory: Path) -> set[str]:
    if not directory.is_dir():
        return set()
    return {p.relative_to(directory).as_posix() for p in directory.rglob("*.json")}


def drifted(directory: Path = SCHEMA_DIR, files: dict[str, str] | None = None) -> list[str]:
    """Files under `directory` that differ from the types: changed, missing or no longer generated."""
    files = build() if files is None else files
    out = []
    for rel in sorted(set(files) | _existing(directory)):
        target = directory / rel
        if rel not in files:
            out.append(f"{rel} (no longer generated)")
        elif not target.is_file():
            out.append(f"{rel} (missing)")
        elif target.read_text(encoding="utf-8") != files[rel]:
            out.append(f"{rel} (changed)")
    return out


def untyped_fields() -> list[str]:
    """`Owner.field` of every Struct field reachable from the schemas whose wire type still holds Any."""
    retype = {(w.owner, w.field): w for w in WIRE_TYPES}
    rewriter = _Rewriter(retype, {name: CONFIG_BOOKKEEPING for name in CONFIG_FILES.values()})
    seen: set[type] = set()
    found: set[str] = set()

    def visit(tp: Any, where: str | None) -> None:
        if tp is Any:
            if where is not None:
                found.add(where)
            return
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            if tp in seen:
                return
            seen.add(tp)
            for f in msgspec.structs.fields(tp):
                visit(f.type, f"{tp.__name__}.{f.name}")
            return
        for arg in get_args(tp):
            if arg is not Ellipsis and not isinstance(arg, (str, int, msgspec.Meta)):
                visit(arg, where)

    for entry in _entries():
        if entry.type is not None:
            visit(rewriter.type(entry.type), None)
    return sorted(found)


# -- command line -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sidecar.schemas", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if schemas/ differs from the types")
    parser.add_argument("--out", type=Path, default=SCHEMA_DIR, help="target directory (default: schemas/)")
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = drifted(args.out)
            if stale:
                lines = "\n".join(f"  {line}" for line in stale)
                sys.stderr.write(
                    f"{len(stale)} schema file(s) drifted from the types:\n{lines}\n"
                    "run python -m sidecar.schemas\n"
                )
                return 1
            sys.stderr.write(f"schemas in {args.out} match the types\n")
            return 0
        changed = write(args.out)
    except SchemaError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    listing = "".join(f"  {line}\n" for line in changed)
    sys.stderr.write(f"wrote {args.out}: {len(changed)} file(s) changed\n{listing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
