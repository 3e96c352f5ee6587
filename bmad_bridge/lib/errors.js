'use strict';
/**
 * The bridge's one error class and the one place error codes become exit codes.
 *
 * Every failure a caller of the client or the CLI sees is a BmadDataError carrying:
 *   code       stable string: the sidecar's data.code (SQL_ERROR, OUT_OF_MEMORY, ...) or one
 *              of the bridge's own codes below
 *   message    what happened
 *   hint       what to do next
 *   retryable  whether retrying the same request can help
 *   details    structured facts (flag and file, diagnostics, exit code, stderr tail, ...)
 *   rpcCode    the JSON-RPC error number when the sidecar sent one, else null
 *
 * Codes that only the bridge raises:
 *   SIDECAR_EXITED       the sidecar process ended while a request was in flight
 *   SIDECAR_UNAVAILABLE  it could not be started (no Python, module missing) or keeps dying
 *   PROTOCOL_ERROR       a line on the sidecar's stdout that is not a JSON-RPC message
 *   COMMAND_DISABLED     a CLI subcommand turned off in duckdb-cli-integration-config.yaml
 *   NOT_AVAILABLE        a CLI subcommand whose feature arrives with a later issue
 *   USAGE                bad command-line arguments
 *   CHECKS_FAILED        `bmad-data doctor` found a failing check
 */

class BmadDataError extends Error {
  constructor(code, message, { hint = '', retryable = false, details = {}, rpcCode = null, severity = 'error', cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'BmadDataError';
    this.code = code;
    this.hint = hint;
    this.retryable = retryable;
    this.details = details;
    this.rpcCode = rpcCode;
    this.severity = severity;
  }

  /** Build from a JSON-RPC error object as the sidecar sends it. */
  static fromRpc(error) {
    const data = error && typeof error.data === 'object' && error.data !== null ? error.data : {};
    const code = typeof data.code === 'string' ? data.code : codeForRpcNumber(error && error.code);
    // Only the types documented reach a caller, whatever the sidecar wrote (a renderer calls string methods).
    const text = (value) => (typeof value === 'string' && value !== '' ? value : null);
    return new BmadDataError(code, text(data.message) || text(error && error.message) || 'unknown sidecar error', {
      hint: text(data.hint) || '',
      retryable: data.retryable === true,
      details: data.details && typeof data.details === 'object' && !Array.isArray(data.details) ? data.details : {},
      rpcCode: error && Number.isInteger(error.code) ? error.code : null,
      severity: SEVERITIES.includes(data.severity) ? data.severity : 'error',
    });
  }

  toJSON() {
    return {
      code: this.code,
      message: this.message,
      hint: this.hint,
      retryable: this.retryable,
      severity: this.severity,
      rpc_code: this.rpcCode,
      details: this.details,
    };
  }
}

const SEVERITIES = ['info', 'warning', 'error', 'critical'];

const RPC_NUMBERS = {
  '-32700': 'PARSE_ERROR',
  '-32600': 'INVALID_REQUEST',
  '-32601': 'METHOD_NOT_FOUND',
  '-32602': 'INVALID_PARAMS',
  '-32603': 'INTERNAL',
  '-32001': 'FEATURE_DISABLED',
  '-32002': 'CONFIG_INVALID',
  '-32003': 'ACCESS_DENIED',
  '-32004': 'INPUT_ERROR',
  '-32005': 'SQL_ERROR',
  '-32006': 'OUT_OF_MEMORY',
  '-32007': 'SPILL_LIMIT',
  '-32008': 'TIMEOUT',
  '-32800': 'CANCELLED',
  '-32009': 'WORKER_CRASHED',
};

function codeForRpcNumber(n) {
  return RPC_NUMBERS[String(n)] || 'INTERNAL';
}

/**
 * Exit codes of `bmad-data`, one per error family. docs/bmad-integration.md prints this table;
 * a test keeps the two in step.
 */
const EXIT_CODES = Object.freeze({
  OK: 0,
  INTERNAL: 1,
  PROTOCOL_ERROR: 1,
  PARSE_ERROR: 1,
  USAGE: 2,
  INVALID_PARAMS: 2,
  INVALID_REQUEST: 2,
  METHOD_NOT_FOUND: 2,
  FEATURE_DISABLED: 3,
  COMMAND_DISABLED: 3,
  NOT_AVAILABLE: 4,
  CONFIG_INVALID: 5,
  ACCESS_DENIED: 6,
  INPUT_ERROR: 7,
  SQL_ERROR: 8,
  OUT_OF_MEMORY: 9,
  SPILL_LIMIT: 10,
  TIMEOUT: 11,
  WORKER_CRASHED: 12,
  SIDECAR_EXITED: 12,
  SIDECAR_UNAVAILABLE: 13,
  CHECKS_FAILED: 14,
  CANCELLED: 130,
});

function exitCodeFor(error) {
  const code = error instanceof BmadDataError ? error.code : 'INTERNAL';
  return Object.prototype.hasOwnProperty.call(EXIT_CODES, code) ? EXIT_CODES[code] : EXIT_CODES.INTERNAL;
}

module.exports = { BmadDataError, EXIT_CODES, exitCodeFor, codeForRpcNumber };
