"""bmad-data sidecar: memory-safe DuckDB behind JSON-RPC 2.0 over stdio."""

__version__ = "0.1.0"
PROTOCOL_VERSION = "1.0"
SERVER_NAME = "bmad-data-sidecar"
