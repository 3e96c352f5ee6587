"""The sidecar's one error tree.

Every failure a client can see is a `SidecarError`. Each class carries its stable string
`code`, its JSON-RPC error number, a default hint telling the user what to do next, a
severity and whether retrying the same request can help. The retry ladder and the
protocol layer read these attributes, never the message text.

    SidecarError
    ├── ProtocolError                  JSON-RPC's own faults (-32700 .. -32603)
    │   ├── ParseError                 not JSON, or not UTF-8, or a line too long
    │   ├── InvalidRequest             JSON, but not a JSON-RPC request
    │   ├── MethodNotFound
    │   ├── InvalidParams              wrong or missing parameters
    │   └── InternalError              a bug in the sidecar (INTERNAL)
    ├── FeatureDisabled                FEATURE_DISABLED
    ├── ConfigInvalid                  CONFIG_INVALID
    ├── AccessDenied                   ACCESS_DENIED
    ├── InputError                     INPUT_ERROR (missing or corrupt file)
    ├── SqlError                       SQL_ERROR
    ├── ResourceError                  the budget ran out
    │   ├── OutOfMemory                OUT_OF_MEMORY
    │   └── SpillLimit                 SPILL_LIMIT
    ├── Timeout                        TIMEOUT
    ├── Cancelled                      CANCELLED (-32800, as LSP's RequestCancelled)
    └── WorkerCrashed                  WORKER_CRASHED
"""

from __future__ import annotations

import difflib
from typing import Any, ClassVar, Iterable

__all__ = [
    "SidecarError",
    "ProtocolError",
    "ParseError",
    "InvalidRequest",
    "MethodNotFound",
    "InvalidParams",
    "InternalError",
    "FeatureDisabled",
    "ConfigInvalid",
    "AccessDenied",
    "InputError",
    "SqlError",
    "ResourceError",
    "OutOfMemory",
    "SpillLimit",
    "Timeout",
    "Cancelled",
    "WorkerCrashed",
    "ERROR_CLASSES",
    "did_you_mean",
]


class SidecarError(Exception):
    """Root of every error the sidecar reports to a client."""

    code: ClassVar[str] = "INTERNAL"
    rpc_code: ClassVar[int] = -32603
    default_hint: ClassVar[str] = (
        "This is a bug in the sidecar; please report it with the request that caused it."
    )
    severity: ClassVar[str] = "error"
    retryable: ClassVar[bool] = False

    def __init__(
        self, message: str, *, hint: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        self.details: dict[str, Any] = dict(details or {})

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default pickling; errors cross process
        # boundaries (worker -> sidecar), so rebuild them explicitly.
        return (_rebuild, (type(self), self.message, self.hint, self.details))

    def to_data(self) -> dict[str, Any]:
        """The `data` member of a JSON-RPC error object."""
        return {
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "severity": self.severity,
            "retryable": self.retryable,
            "details": self.details,
        }

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[SidecarError], message: str, hint: str, details: dict[str, Any]) -> SidecarError:
    err = cls.__new__(cls)
    SidecarError.__init__(err, message, hint=hint, details=details)
    return err


class ProtocolError(SidecarError):
    """A fault in the JSON-RPC exchange itself."""


class ParseError(ProtocolError):
    code = "PARSE_ERROR"
    rpc_code = -32700
    default_hint = "Send one UTF-8 JSON object (or batch array) per line, with no embedded newlines."


class InvalidRequest(ProtocolError):
    code = "INVALID_REQUEST"
    rpc_code = -32600
    default_hint = (
        'A request is {"jsonrpc": "2.0", "id": <number|string>, "method": <string>, "params"?: {...}}.'
    )


class MethodNotFound(ProtocolError):
    code = "METHOD_NOT_FOUND"
    rpc_code = -32601
    default_hint = "Call `initialize` to see the list of methods this sidecar serves."


class InvalidParams(ProtocolError):
    code = "INVALID_PARAMS"
    rpc_code = -32602
    default_hint = "Check the parameter names and types against docs/protocol.md or schemas/."


class InternalError(ProtocolError):
    code = "INTERNAL"
    rpc_code = -32603


class FeatureDisabled(SidecarError):
    code = "FEATURE_DISABLED"
    rpc_code = -32001
    default_hint = "Enable the flag in the feature flags file named in details, then retry."


class ConfigInvalid(SidecarError):
    code = "CONFIG_INVALID"
    rpc_code = -32002
    default_hint = (
        "Fix the file and line named in details.diagnostics; `config.validate` lists every problem."
    )


class AccessDenied(SidecarError):
    code = "ACCESS_DENIED"
    rpc_code = -32003
    default_hint = (
        "The sidecar manages memory, spill, extensions and file access itself. Pass settings through the "
        "request's `settings` or the config files, and keep files inside the allowed directories."
    )


class InputError(SidecarError):
    code = "INPUT_ERROR"
    rpc_code = -32004
    default_hint = "Check that the path exists, is readable, and holds a valid CSV, Parquet or JSON file."


class SqlError(SidecarError):
    code = "SQL_ERROR"
    rpc_code = -32005
    default_hint = (
        "Fix the SQL and retry; when DuckDB gives a position, details.context marks it with a caret."
    )


class ResourceError(SidecarError):
    """The work needed more of the machine than its budget allows."""


class OutOfMemory(ResourceError):
    code = "OUT_OF_MEMORY"
    rpc_code = -32006
    retryable = True
    default_hint = (
        "The query needed more memory than its budget. Raise `memory_limit` in the request's settings "
        "if the machine has room, filter or aggregate earlier, or split the work into smaller parts."
    )


class SpillLimit(ResourceError):
    code = "SPILL_LIMIT"
    rpc_code = -32007
    default_hint = (
        "The query spilled more to disk than allowed. Free disk space or raise `max_temp_directory_size`, "
        "or reduce the data the query must hold at once."
    )


class Timeout(SidecarError):
    code = "TIMEOUT"
    rpc_code = -32008
    retryable = True
    default_hint = (
        "If it ran past its deadline, raise `timeout_ms` for this request or narrow the query; if it "
        "stalled (no progress and no CPU), `stall_timeout_ms` stopped it: look for what it waited on."
    )


class Cancelled(SidecarError):
    code = "CANCELLED"
    rpc_code = -32800
    severity = "info"
    default_hint = "The request was cancelled by the client; nothing was written."


class WorkerCrashed(SidecarError):
    code = "WORKER_CRASHED"
    rpc_code = -32009
    retryable = True
    default_hint = "The process running the query died; the sidecar replaced it. Retry the request."


ERROR_CLASSES: tuple[type[SidecarError], ...] = (
    ParseError,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    InternalError,
    FeatureDisabled,
    ConfigInvalid,
    AccessDenied,
    InputError,
    SqlError,
    OutOfMemory,
    SpillLimit,
    Timeout,
    Cancelled,
    WorkerCrashed,
)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A suffix suggesting the closest known name, or "".

    >>> did_you_mean("prodution_small", ["development", "production_small"])
    "; did you mean 'production_small'?"
    """
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
