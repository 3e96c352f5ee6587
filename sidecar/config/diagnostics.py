"""One problem found in a config file, with the place to fix it."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["Diagnostic", "Severity", "format_diagnostics"]

Severity = Literal["error", "warning", "info"]


class Diagnostic(msgspec.Struct, frozen=True):
    """An error makes the pack unusable; a warning says what is ignored and what to use instead;
    info records a guess or default the loader made (e.g. an unset `${VAR:-default}`)."""

    severity: Severity
    file: str
    line: int | None
    column: int | None
    path: str
    message: str
    hint: str = ""

    def where(self) -> str:
        """`file:line:column`, as editors and terminals link it."""
        if self.line is None:
            return self.file
        if self.column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"

    def __str__(self) -> str:
        key = f" [{self.path}]" if self.path else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{self.where()}: {self.severity}:{key} {self.message}{hint}"


def format_diagnostics(diagnostics: list[Diagnostic]) -> str:
    """All diagnostics, one per line, errors first."""
    order = {"error": 0, "warning": 1, "info": 2}
    return "\n".join(str(d) for d in sorted(diagnostics, key=lambda d: order[d.severity]))
