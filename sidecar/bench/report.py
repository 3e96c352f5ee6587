"""Writing a benchmark's generated table into a doc, between markers, keeping the prose around it."""

from __future__ import annotations

from pathlib import Path

__all__ = ["mib", "write_block"]


def mib(n: float) -> str:
    """Bytes as whole MiB with thousands separators, as every benchmark table prints them."""
    return f"{n / 2**20:,.0f}"


def write_block(path: Path, name: str, title: str, table: str, command: str) -> None:
    """Replace the `name` block of `path` (a new file gets `title` and the block)."""
    begin = f"<!-- {name}:begin (written by sidecar.bench.{name}; edit outside the markers) -->"
    end = f"<!-- {name}:end -->"
    block = f"{begin}\n\nCommand:\n\n```\n{command}\n```\n\n{table}\n{end}"
    text = path.read_text() if path.exists() else f"# {title}\n\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
