"""YAML loading that remembers where every key and value was written.

A diagnostic is only useful when it names the file, line and column to edit, so the loader
builds dict/list subclasses that carry the marks of their keys and items. A syntax error comes
back as a diagnostic carrying the parser's own problem text, never as an exception. Duplicate
keys, which PyYAML silently resolves to the last one, become warnings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from sidecar.config.diagnostics import Diagnostic

__all__ = ["Pos", "MarkedDict", "MarkedList", "MarkedLoader", "load_yaml", "plain"]

Pos = tuple[int, int]  # 1-based line and column


class MarkedDict(dict[str, Any]):
    """A mapping whose keys and values remember their (line, column)."""

    key_pos: dict[str, Pos]
    value_pos: dict[str, Pos]
    pos: Pos

    def __init__(self) -> None:
        super().__init__()
        self.key_pos = {}
        self.value_pos = {}
        self.pos = (0, 0)


class MarkedList(list[Any]):
    """A sequence whose items remember their (line, column)."""

    item_pos: list[Pos]
    pos: Pos

    def __init__(self) -> None:
        super().__init__()
        self.item_pos = []
        self.pos = (0, 0)


def _pos(node: Node) -> Pos:
    return node.start_mark.line + 1, node.start_mark.column + 1


class MarkedLoader(yaml.SafeLoader):
    """SafeLoader building MarkedDict/MarkedList; duplicate keys are collected, not lost."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[str, Pos, Pos]] = []

    def construct_marked_map(self, node: MappingNode) -> Iterator[MarkedDict]:
        data = MarkedDict()
        data.pos = _pos(node)
        yield data
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            key = key if isinstance(key, str) else str(key)
            if key in data:
                self.duplicates.append((key, data.key_pos[key], _pos(key_node)))
            data[key] = self.construct_object(value_node, deep=True)  # type: ignore[no-untyped-call]
            data.key_pos[key] = _pos(key_node)
            data.value_pos[key] = _pos(value_node)

    def construct_marked_seq(self, node: SequenceNode) -> Iterator[MarkedList]:
        data = MarkedList()
        data.pos = _pos(node)
        yield data
        for child in node.value:
            data.append(self.construct_object(child, deep=True))  # type: ignore[no-untyped-call]
            data.item_pos.append(_pos(child))


MarkedLoader.add_constructor("tag:yaml.org,2002:map", MarkedLoader.construct_marked_map)
MarkedLoader.add_constructor("tag:yaml.org,2002:seq", MarkedLoader.construct_marked_seq)


def _failed(
    path: Path, at: tuple[int | None, int | None], message: str, hint: str
) -> tuple[None, list[Diagnostic]]:
    return None, [Diagnostic("error", str(path), at[0], at[1], "", message, hint)]


def _line_col(text: str | bytes, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a character (or byte) offset.

    >>> _line_col("ab\\ncd", 4)
    (2, 2)
    """
    if isinstance(text, bytes):
        return text.count(b"\n", 0, offset) + 1, offset - text.rfind(b"\n", 0, offset)
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)


def load_yaml(path: Path) -> tuple[Any, list[Diagnostic]]:
    """Parse one file; (document or None, diagnostics). Never raises for bad content."""
    if path.is_dir():
        return _failed(
            path,
            (None, None),
            "is a directory, not a YAML file",
            "Move the directory away and put the YAML file at this path (see docs/configuration.md).",
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return _failed(
            path,
            (None, None),
            f"cannot read: {exc.strerror}",
            "Make the file readable by the user running the sidecar (check its permissions).",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _failed(
            path,
            _line_col(raw, exc.start),
            f"not UTF-8 text: byte 0x{raw[exc.start]:02x} cannot be decoded",
            "Save the file as UTF-8 (or retype the character at this line).",
        )
    loader: MarkedLoader | None = None
    try:
        loader = MarkedLoader(text)  # the reader checks the characters here, before any parsing
        doc = loader.get_single_data()  # type: ignore[no-untyped-call]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        context = f" ({exc.context})" if exc.context else ""
        return _failed(
            path,
            (mark.line + 1, mark.column + 1) if mark is not None else (None, None),
            f"YAML syntax error: {exc.problem or 'invalid YAML'}{context}",
            "Fix the YAML at this line; the last good configuration stays in force.",
        )
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, other controls)
        return _failed(
            path,
            _line_col(text, exc.position),
            f"YAML cannot contain the character U+{_code_point(exc.character):04X} ({exc.reason})",
            "Remove the character at this line.",
        )
    except yaml.YAMLError as exc:
        return _failed(path, (None, None), f"YAML error: {exc}", "Fix the YAML in this file.")
    finally:
        if loader is not None:
            loader.dispose()  # type: ignore[no-untyped-call]
    diags = [
        Diagnostic(
            "warning",
            str(path),
            second[0],
            second[1],
            key,
            f"duplicate key '{key}' (first at line {first[0]}); YAML keeps only this last one",
            "Remove one of the two entries.",
        )
        for key, first, second in (loader.duplicates if loader is not None else [])
    ]
    return doc, diags


def _code_point(character: int | str) -> int:
    return character if isinstance(character, int) else ord(character[0])


def plain(value: Any) -> Any:
    """The same data as builtin dicts and lists, for sections kept as-is (informational)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
