"""A small spec-driven walker: raw marked YAML in, typed Structs and diagnostics out.

Each file's rules (rules.py) say, key by key, whether the sidecar applies it (a `Leaf` with a
converter, or a nested `Section`), keeps it as informational (`INFO`), or ignores it for a stated
reason (`Ignore`, a warning that names the replacement). Anything else is an unknown key: a
warning with the closest known name. Nothing is dropped silently, and a bad value is an error
at its own line and column.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import msgspec
import yaml

from sidecar.config.diagnostics import Diagnostic, Severity
from sidecar.config.yamlload import MarkedDict, MarkedList, Pos, plain
from sidecar.errors import did_you_mean
from sidecar.units import format_size, parse_size

__all__ = [
    "Ctx",
    "Noted",
    "Leaf",
    "Section",
    "Entries",
    "ListOf",
    "Ignore",
    "INFO",
    "MISSING",
    "walk",
    "substitute",
    "to_size",
    "to_bool",
    "to_int",
    "to_str",
    "to_choice",
    "to_percent",
    "to_mb_or_size",
    "to_str_list",
    "to_path",
]


_FIX_VALUE = "Fix the value at this line; docs/configuration.md gives each key's type and an example."


def yaml_kind(raw: Any) -> str:
    """What a YAML author wrote, in YAML's words (not the loader's class names).

    >>> yaml_kind(MarkedList()), yaml_kind("x"), yaml_kind(None)
    ('a list', 'text', 'nothing (null)')
    """
    if isinstance(raw, dict):
        return "a mapping"
    if isinstance(raw, list):
        return "a list"
    if raw is None:
        return "nothing (null)"
    if isinstance(raw, bool):
        return "a boolean"
    if isinstance(raw, (int, float)):
        return "a number"
    if isinstance(raw, str):
        return "text"
    return type(raw).__name__


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class Ctx:
    """Where diagnostics and value positions of one file are collected."""

    file: str
    env: Mapping[str, str]
    diagnostics: list[Diagnostic] = field(default_factory=list)
    positions: dict[str, Pos] = field(default_factory=dict)

    def add(self, severity: Severity, pos: Pos | None, path: str, message: str, hint: str = "") -> None:
        line, col = pos if pos is not None else (None, None)
        self.diagnostics.append(Diagnostic(severity, self.file, line, col, path, message, hint))


Converter = Callable[[Any], Any]  # raises ValueError with a message a person can act on


@dataclass(frozen=True)
class Noted:
    """A converted value plus a note on the guess the converter made (reported as a diagnostic)."""

    value: Any
    severity: Severity
    message: str
    hint: str = ""


@dataclass(frozen=True)
class Leaf:
    convert: Converter
    required: bool = False


@dataclass(frozen=True)
class Ignore:
    """A key the sidecar reads but does not apply: a warning that says why and what to use."""

    reason: str


class _Info:
    def __repr__(self) -> str:
        return "INFO"


INFO: Any = _Info()  # informational: kept as plain data, not applied, not descended into


@dataclass(frozen=True)
class Section:
    struct: type[msgspec.Struct]
    fields: dict[str, Any]
    check: Callable[[dict[str, Any], MarkedDict, Ctx, str], None] | None = None
    required: bool = False


@dataclass(frozen=True)
class Entries:
    """A mapping of user-chosen names (profiles, flags, subcommands), each following `item`."""

    item: Any


@dataclass(frozen=True)
class ListOf:
    item: Any


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def walk(spec: Any, raw: Any, ctx: Ctx, path: str, pos: Pos | None) -> Any:
    """Validate `raw` against `spec`; the typed value, or MISSING after an error diagnostic."""
    if isinstance(spec, Leaf):
        try:
            value = spec.convert(substitute(raw, ctx, path, pos))
        except ValueError as exc:
            ctx.add("error", pos, path, f"invalid value {raw!r}: {exc}", _FIX_VALUE)
            return MISSING
        if isinstance(value, Noted):
            ctx.add(value.severity, pos, path, value.message, value.hint)
            value = value.value
        if pos is not None:
            ctx.positions[path] = pos
        return value
    if spec is INFO:
        return plain(raw)
    if isinstance(spec, ListOf):
        if not isinstance(raw, MarkedList):
            ctx.add("error", pos, path, f"expected a list, got {yaml_kind(raw)}", _FIX_VALUE)
            return MISSING
        items = [walk(spec.item, v, ctx, f"{path}[{i}]", raw.item_pos[i]) for i, v in enumerate(raw)]
        return [v for v in items if v is not MISSING]
    if not isinstance(raw, MarkedDict):
        ctx.add("error", pos, path, f"expected a mapping of keys, got {yaml_kind(raw)}", _FIX_VALUE)
        return MISSING
    if pos is not None:
        ctx.positions[path] = pos
    if isinstance(spec, Entries):
        out = {}
        for name, value in raw.items():
            ctx.positions[_join(path, name)] = raw.key_pos[name]
            item = walk(spec.item, value, ctx, _join(path, name), raw.value_pos[name])
            if item is not MISSING:
                out[name] = item
        return out
    return _walk_section(spec, raw, ctx, path)


def _walk_section(spec: Section, raw: MarkedDict, ctx: Ctx, path: str) -> Any:
    values: dict[str, Any] = {}
    known = [k for k, v in spec.fields.items() if not isinstance(v, Ignore)]
    for key, value in raw.items():
        sub = spec.fields.get(key)
        key_path = _join(path, key)
        if sub is None:
            ctx.add(
                "warning",
                raw.key_pos[key],
                key_path,
                f"unknown key '{key}' is ignored{did_you_mean(key, known)}",
                f"known keys here: {', '.join(known)}" if known else "remove it",
            )
        elif isinstance(sub, Ignore):
            ctx.add("warning", raw.key_pos[key], key_path, f"'{key}' is not applied: {sub.reason}")
        else:
            converted = walk(sub, value, ctx, key_path, raw.value_pos[key])
            if converted is not MISSING:
                values[key] = converted
    missing = [
        k for k, v in spec.fields.items() if isinstance(v, (Leaf, Section)) and v.required and k not in values
    ]
    for key in missing:
        if key not in raw:  # present but invalid was reported at its own position already
            ctx.add(
                "error",
                raw.pos,
                _join(path, key),
                f"required key '{key}' is missing",
                f"Add `{key}:` here; docs/configuration.md shows every key of this file.",
            )
    if missing:
        return MISSING
    if spec.check is not None:
        spec.check(values, raw, ctx, path)
    return spec.struct(**values)


def substitute(raw: Any, ctx: Ctx, path: str, pos: Pos | None) -> Any:
    """Expand `${VAR}` and `${VAR:-default}` from the environment, then re-read the text as a
    YAML scalar so "${X:-15}" is the number 15 and "${X:-false}" is a boolean, as the author meant."""
    if not isinstance(raw, str) or "${" not in raw:
        return raw

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in ctx.env:
            return ctx.env[name]
        if default is None:
            raise ValueError(f"environment variable {name} is not set and '{match.group(0)}' has no default")
        ctx.add("info", pos, path, f"{name} is not set; using the default {default!r}")
        return default

    text = _ENV_REF.sub(repl, raw)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (str, int, float, bool)) else text


# Converters ------------------------------------------------------------------------------


def to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return value


def to_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def to_int(minimum: int | None = None, maximum: int | None = None) -> Converter:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("expected a whole number")
        if minimum is not None and value < minimum:
            raise ValueError(f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be at most {maximum}")
        return value

    return convert


def to_choice(*choices: str, aliases: Mapping[str, str] | None = None) -> Converter:
    def convert(value: Any) -> str:
        text = to_str(value).strip().lower()
        text = (aliases or {}).get(text, text)
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}{did_you_mean(text, choices)}")
        return text

    return convert


def to_size(minimum: int = 0) -> Converter:
    """A size string ("512MB", "2GiB"); a bare number is bytes, so a tiny one is surely a slip."""

    def convert(value: Any) -> int:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("expected a size such as '4GB' or '4GiB'")
        n = parse_size(value)
        if n < minimum:
            bare = not (isinstance(value, str) and any(c.isalpha() for c in value))
            raise ValueError(
                f"{format_size(n)} is below the minimum {format_size(minimum)}"
                + ("; a bare number is bytes: did you forget a unit?" if bare else "")
            )
        return n

    return convert


def to_str_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of names")
    return list(value)


def to_path(value: Any) -> str:
    text = to_str(value)
    if "\0" in text:
        raise ValueError("a path cannot contain NUL")
    return os.path.expanduser(text)


def to_percent(value: Any) -> float | Noted:
    """A threshold written as a percentage (70 or "70%") as a fraction of 1 (0.7).

    The pack writes thresholds as bare percentages. A number strictly between 0 and 1 (0.7) could
    be a fraction or a tiny percentage, so it is refused rather than guessed; write 70 or "0.7%".

    >>> to_percent(70), to_percent("12.5%")
    (0.7, 0.125)
    """
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            number = float(value.strip()[:-1])
        except ValueError:
            raise ValueError("expected a percentage such as 70 or '70%'") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        if 0 < number < 1:
            raise ValueError(
                f"ambiguous: thresholds are percentages (70 means 70%); write {number * 100:g} "
                f"for {number * 100:g}%, or '{number:g}%' if you really mean {number:g}%"
            )
    else:
        raise ValueError("expected a percentage such as 70 or '70%'")
    if not (0 < number <= 100) or not math.isfinite(number):
        raise ValueError(f"a percentage must be above 0 and at most 100, got {number:g}")
    if number == 1 and not isinstance(value, str):
        return Noted(
            0.01, "warning", "read as 1%; thresholds are percentages", "write 100 if you meant 100%, or '1%'"
        )
    return round(number / 100, 10)


def to_mb_or_size(value: Any) -> int | Noted:
    """Bytes from a size string, or from a bare number in MB (10^6 bytes, the original pack's unit)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0 or not math.isfinite(value):
            raise ValueError("must be zero or more")
        return Noted(
            int(value * 1000**2),
            "info",
            f"bare number read as {value:g}MB",
            f"write '{value:g}MB' to be explicit",
        )
    return to_size()(value)
