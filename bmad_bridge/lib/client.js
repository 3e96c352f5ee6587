'use strict';
/**
 * SidecarClient: spawns `python -m sidecar`, speaks JSON-RPC 2.0 to it over stdio, supervises it.
 *
 * Nothing here blocks the event loop: the child is started with async `spawn`, stdout is split
 * into lines as chunks arrive, and every request is a Promise settled by its response.
 *
 * Events
 *   'ready'           (initializeResult)   after `initialize` answered (also after each restart)
 *   'notification'    ({method, params})   every notification, plus one event named after it when
 *                                          the name holds a '/' (so a sidecar cannot raise 'error',
 *                                          'exit', ... of the client's own):
 *   '$/progress', 'config/changed', 'config/error', '$/log', ...      (params)
 *   'protocol-error'  (BmadDataError)      stdout carried a line that is not a JSON-RPC message
 *                                          (not JSON, a wrong shape, an unknown id, a line longer
 *                                          than maxLineChars), or the sidecar rejected a line we
 *                                          sent (id null). A malformed or over-long answer to a
 *                                          pending request also rejects that request.
 *                                          With no listener it is re-emitted as 'error'.
 *   'stderr'          (text)               the sidecar's log output, as it arrives
 *   'exit'            ({pid, exit_code, signal, stderr_tail, expected})
 *   'restart'         ({attempt, delay_ms})  a restart is scheduled after an unexpected exit
 *   'fatal'           (BmadDataError)      restarts exhausted; requests now reject SIDECAR_UNAVAILABLE
 *
 * With `daemon: true` the client talks to the user's shared daemon for its working directory over
 * a Unix socket (lib/daemon.js), starting one when none runs, and spawns a private sidecar when
 * the daemon is disabled (BMAD_DATA_NO_DAEMON=1), cannot be started (said once on 'stderr'), is
 * of another version and busy, or (after a version mismatch) is being replaced. `via` says which.
 */
const { spawn } = require('node:child_process');
const { EventEmitter } = require('node:events');
const { BmadDataError } = require('./errors');
const { repoRoot, resolvePython, sidecarEnv } = require('./locate');
const daemons = require('./daemon');
const { LineSplitter, MAX_LINE_CHARS } = require('./lines');

const STDERR_TAIL_CHARS = 8192;

class SidecarClient extends EventEmitter {
  /**
   * @param {object} [options]
   * @param {string} [options.root]         repository root (where `-m sidecar` resolves)
   * @param {string} [options.python]       interpreter; default BMAD_DATA_PYTHON, .venv, python3
   * @param {string[]} [options.args]       argv after the interpreter; default ['-P', '-m', 'sidecar']
   *                                        (-P: the caller's cwd must not shadow the package)
   * @param {string} [options.cwd]          the sidecar's working directory; default process.cwd(),
   *                                        so relative dataset paths mean what the user typed
   * @param {object} [options.env]          environment; default process.env (+ PYTHONPATH)
   * @param {object|false} [options.initialize]  `initialize` params, replayed on every restart;
   *                                        false skips initialize (raw protocol use)
   * @param {object} [options.restart]      {maxRestarts: 5, baseDelayMs: 200, maxDelayMs: 5000, stableMs: 10000}
   * @param {number} [options.cancelGraceMs]  how long to wait for the answer to `$/cancelRequest`
   * @param {number} [options.maxLineChars]   the longest line read from the sidecar (default: V8's
   *                                        longest string); a longer answer rejects its request
   * @param {boolean} [options.daemon]      use the shared daemon (default false: a private sidecar)
   */
  constructor(options = {}) {
    super();
    this.root = options.root || repoRoot(options.env || process.env);
    const python = options.python ? { command: options.python, source: 'option' } : resolvePython(this.root, options.env || process.env);
    this.python = python.command;
    this.pythonSource = python.source;
    this.args = options.args || ['-P', '-m', 'sidecar'];
    this.cwd = options.cwd || process.cwd();
    this.env = sidecarEnv(this.root, options.env || process.env);
    this.initializeParams = options.initialize === false ? null : { client: { name: 'bmad-data-bridge' }, ...(options.initialize || {}) };
    this.restartPolicy = { maxRestarts: 5, baseDelayMs: 200, maxDelayMs: 5000, stableMs: 10000, ...(options.restart || {}) };
    this.cancelGraceMs = options.cancelGraceMs ?? 3000;
    this.maxLineChars = options.maxLineChars ?? MAX_LINE_CHARS;
    this.initializeResult = null;
    this.restarts = 0;
    this._nextId = 1;
    this._pending = new Map();
    this._abandoned = new Set();
    this._child = null;
    this._closing = false;
    this._fatal = null;
    this._attempt = 0;
    this._restartTimer = null;
    this._ready = null;
    this._killOnParentExit = () => { if (this._child) this._child.kill('SIGKILL'); };
    this.useDaemon = Boolean(options.daemon);
    this.via = null; // 'daemon' or 'private', once started
  }

  /** The running sidecar's pid, or null. */
  get pid() {
    return this._child ? this._child.pid : null;
  }

  /** Start the sidecar and initialize it; resolves with the `initialize` result. */
  start() {
    if (!this._ready) this._ready = this._launch();
    return this._ready;
  }

  async _launch() {
    const connection = this.useDaemon ? await this._openDaemon() : null;
    this._attach(connection || this._spawnChild());
    this.via = connection ? 'daemon' : 'private';
    if (!this.initializeParams) return null;
    let result = await this._send('initialize', this._initParams(), {});
    if (connection) result = await this._checkDaemon(connection, result);
    this.initializeResult = result;
    this.emit('ready', result);
    return result;
  }

  /** A daemon session resolves with the command's own BMAD_DATA_* environment (not the daemon's). */
  _initParams() {
    if (this.via !== 'daemon') return this.initializeParams;
    const env = Object.fromEntries(Object.entries(this.env).filter(([k]) => k.startsWith('BMAD_DATA_')));
    return { ...this.initializeParams, env };
  }

  _say(text) {
    this.emit('stderr', `bmad-data: ${text}\n`);
  }

  /** A connection to the daemon (started when none runs), or null: then a private sidecar. */
  async _openDaemon() {
    const disabled = daemons.daemonDisabled(this.env);
    if (disabled) return null;
    const paths = daemons.daemonPaths({ root: this.root, env: this.env, cwd: this.cwd });
    try {
      const { socket, started } = await daemons.ensureDaemon({ python: this.python, root: this.root, env: this.env, cwd: this.cwd, paths });
      if (started) this._say(`started a daemon on ${paths.socket} (log: ${paths.log})`);
      return new daemons.DaemonConnection(socket, paths);
    } catch (err) {
      this._say(`not using the daemon (${err.message}); starting a private sidecar`);
      return null;
    }
  }

  /**
   * After initialize on a daemon: one of another version is asked to stop once idle; if this
   * client was its only one, a fresh daemon replaces it at once, else this command runs on a
   * private sidecar (the old daemon ends when its clients are done).
   */
  async _checkDaemon(connection, result) {
    const info = result && result.daemon;
    if (info) connection.pid = info.pid;
    const expected = daemons.expectedVersion(this.root);
    const actual = result && result.server && result.server.version;
    if (!expected || actual === expected) return result;
    this._say(`the daemon runs sidecar ${actual}, this bridge ${expected}: asking it to stop when idle`);
    await this._send('daemon.stop', { when_idle: true }, { timeoutMs: 5000 }).catch(() => {});
    connection.replaced = true;
    connection.socket.end();
    let fresh = null;
    if (info && info.clients <= 1 && await daemons.waitGone(connection.paths.socket, { pid: info.pid })) fresh = await this._openDaemon();
    this._attach(fresh || this._spawnChild());
    this.via = fresh ? 'daemon' : 'private';
    const again = await this._send('initialize', this._initParams(), {});
    if (fresh && again.daemon) fresh.pid = again.daemon.pid;
    return again;
  }

  _spawnChild() {
    return spawn(this.python, this.args, { cwd: this.cwd, env: this.env, stdio: ['pipe', 'pipe', 'pipe'] });
  }

  _attach(child) {
    this._child = child;
    this._startedAt = Date.now();
    let stderrTail = '';
    let spawnError = null;
    const splitter = new LineSplitter((line, n) => this._onLine(line, n), {
      maxLineChars: this.maxLineChars,
      onOverflow: (prefix, length, n) => this._onOverflow(prefix, length, n),
    });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => splitter.push(chunk));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_CHARS);
      this.emit('stderr', chunk);
    });
    // A write to a sidecar that just died fails with EPIPE; the 'close' handler reports the exit.
    child.stdin.on('error', (err) => { this._lastStdinError = err; });
    child.on('error', (err) => { spawnError = err; });
    process.once('exit', this._killOnParentExit);
    child.on('close', (exitCode, signal) => {
      process.removeListener('exit', this._killOnParentExit);
      splitter.end();
      if (child.replaced) return; // an old daemon's connection, given up for a fresh one
      if (this._child === child) this._child = null;
      const info = { pid: child.pid ?? null, exit_code: exitCode, signal, stderr_tail: stderrTail.slice(-2000), expected: this._closing };
      if (child.isDaemon) Object.assign(info, { daemon: true, socket: child.paths.socket, log: child.paths.log });
      this.emit('exit', info);
      const error = spawnError ? unavailable(this, spawnError) : exited(info);
      this._rejectAll(error);
      if (spawnError) {
        // No interpreter, or not executable: restarting cannot help.
        this._fatal = error;
        this.emit('fatal', error);
      } else if (!this._closing) {
        this._scheduleRestart();
      }
    });
  }

  /**
   * Send a request; resolves with its result or rejects with a BmadDataError.
   * @param {string} method
   * @param {object} [params]
   * @param {{signal?: AbortSignal, onProgress?: Function, timeoutMs?: number}} [options]
   */
  async request(method, params = {}, options = {}) {
    if (options.signal && options.signal.aborted) throw cancelled(method, 'aborted before it was sent');
    if (this._fatal) throw this._fatal;
    if (this._closing) throw closedError();
    await this.start();
    if (this._fatal) throw this._fatal;
    if (options.signal && options.signal.aborted) throw cancelled(method, 'aborted before it was sent');
    return this._send(method, params, options);
  }

  _send(method, params, { signal, onProgress, timeoutMs }) {
    const id = this._nextId++;
    const sentParams = { ...params };
    if (onProgress && sentParams.progress_token === undefined) sentParams.progress_token = `bridge-${id}`;
    return new Promise((resolve, reject) => {
      const entry = { id, method, token: sentParams.progress_token, onProgress, timers: [], cancelReason: null };
      const finish = () => {
        this._pending.delete(id);
        for (const t of entry.timers) clearTimeout(t);
        if (signal) signal.removeEventListener('abort', onAbort);
      };
      entry.resolve = (value) => { finish(); resolve(value); };
      entry.reject = (error) => { finish(); reject(error); };
      const onAbort = () => this._cancel(entry, 'aborted');
      if (signal) signal.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs !== undefined && timeoutMs !== null) {
        entry.timers.push(setTimeout(() => this._cancel(entry, 'timeout', timeoutMs), timeoutMs));
      }
      let line;
      try {
        line = JSON.stringify({ jsonrpc: '2.0', id, method, params: sentParams });
      } catch (err) { // a BigInt, a cycle: nothing was sent
        entry.reject(new BmadDataError('INVALID_PARAMS', `the params of '${method}' cannot be sent as JSON: ${err.message}`, {
          hint: 'Pass plain JSON values: numbers beyond 2^53 as strings, no BigInt, no cycles.', details: { method },
        }));
        return;
      }
      const limit = this.initializeResult && this.initializeResult.max_request_bytes;
      if (limit && line.length * 3 > limit && Buffer.byteLength(line) > limit) { // the sidecar would refuse it, with id null
        entry.reject(new BmadDataError('INVALID_PARAMS', `the request '${method}' is ${Buffer.byteLength(line)} bytes as JSON, more than the sidecar's limit of ${limit} bytes per request; it was not sent`, {
          hint: 'Put large inputs in a file and pass its path; requests carry SQL and parameters only.', details: { method, max_request_bytes: limit },
        }));
        return;
      }
      this._pending.set(id, entry);
      this._writeLine(line);
    });
  }

  /** Ask the sidecar to stop a request; settle locally if it does not answer within the grace. */
  _cancel(entry, reason, timeoutMs) {
    if (entry.cancelReason || !this._pending.has(entry.id)) return;
    entry.cancelReason = { reason, timeoutMs };
    this.notify('$/cancelRequest', { id: entry.id });
    entry.timers.push(setTimeout(() => {
      this._abandoned.add(entry.id);
      entry.reject(cancelError(entry, null));
    }, this.cancelGraceMs));
  }

  /** Send a notification (no answer expected). */
  notify(method, params) {
    this._write(params === undefined ? { jsonrpc: '2.0', method } : { jsonrpc: '2.0', method, params });
  }

  /** Write one raw line to the sidecar's stdin: for protocol tests and debugging only. */
  writeRaw(line) {
    if (this._child) this._child.stdin.write(line.endsWith('\n') ? line : `${line}\n`);
  }

  _write(message) {
    this._writeLine(JSON.stringify(message));
  }

  _writeLine(line) {
    if (!this._child || !this._child.stdin.writable) return;
    this._child.stdin.write(`${line}\n`);
  }

  _onLine(line, lineNumber) {
    if (!/\S/.test(line)) return; // blank; trim() would copy a long answer line just to look
    let message;
    try {
      message = JSON.parse(line);
    } catch (err) {
      this._protocolError(`the sidecar wrote a line that is not JSON: ${err.message}`, { line: line.slice(0, 300), line_number: lineNumber });
      return;
    }
    if (Array.isArray(message) && message.length > 0) {
      for (const item of message) this._onMessage(item, line, lineNumber); // a batch answer
      return;
    }
    this._onMessage(message, line, lineNumber);
  }

  _onMessage(message, line, lineNumber) {
    if (message === null || typeof message !== 'object' || Array.isArray(message) || message.jsonrpc !== '2.0') {
      this._protocolError('the sidecar wrote JSON that is not a JSON-RPC 2.0 message', { line: line.slice(0, 300), line_number: lineNumber });
      return;
    }
    if (typeof message.method === 'string' && message.id === undefined) {
      this._onNotification(message.method, message.params, line, lineNumber);
    } else if (message.id === null && isErrorObject(message.error) && !('result' in message)) {
      const err = BmadDataError.fromRpc(message.error);
      err.details = { ...err.details, direction: 'bridge->sidecar' };
      this._emitProtocolError(err);
    } else if ('result' in message || 'error' in message) {
      this._onResponse(message, line, lineNumber);
    } else {
      this._protocolError('the sidecar wrote a message that is neither a response nor a notification', { line: line.slice(0, 300), line_number: lineNumber });
    }
  }

  _onResponse(message, line, lineNumber) {
    const entry = this._pending.get(message.id);
    if (!entry) {
      if (this._abandoned.delete(message.id)) return; // the answer to a request we gave up on
      this._protocolError(`the sidecar answered unknown request id ${JSON.stringify(message.id)}`, { line: line.slice(0, 300), line_number: lineNumber });
      return;
    }
    const malformed = 'result' in message === 'error' in message ? 'both a result and an error'
      : 'error' in message && !isErrorObject(message.error) ? 'an error that is not {code: integer, message: string}' : null;
    if (malformed) {
      const details = { line: line.slice(0, 300), line_number: lineNumber, method: entry.method };
      const err = protocolError(`the sidecar answered request ${entry.id} (${entry.method}) with ${malformed}`, details);
      this._emitProtocolError(err);
      entry.reject(err);
      return;
    }
    if (message.error) {
      const err = BmadDataError.fromRpc(message.error);
      entry.reject(entry.cancelReason && err.code === 'CANCELLED' ? cancelError(entry, err) : err);
    } else {
      entry.resolve(message.result);
    }
  }

  _onNotification(method, params, line, lineNumber) {
    if (params !== undefined && (params === null || typeof params !== 'object')) {
      this._protocolError(`the sidecar sent '${method}' with params that are not an object or array`, { line: line.slice(0, 300), line_number: lineNumber });
      return;
    }
    if (method === '$/progress') {
      const token = params && params.token;
      if (!(typeof token === 'string' || Number.isInteger(token)) || !params.value || typeof params.value !== 'object' || Array.isArray(params.value)) {
        this._protocolError("the sidecar sent '$/progress' without a string or integer token and an object value", { line: line.slice(0, 300), line_number: lineNumber });
        return;
      }
      for (const entry of this._pending.values()) {
        if (entry.onProgress && entry.token === token) this._progress(entry, params);
      }
    }
    this.emit('notification', { method, params });
    if (method.includes('/')) this.emit(method, params);
  }

  /** Call a request's onProgress; if it throws, that request fails with its error (and is cancelled), not the process. */
  _progress(entry, params) {
    try {
      entry.onProgress(params.value, params);
    } catch (err) {
      this.notify('$/cancelRequest', { id: entry.id });
      this._abandoned.add(entry.id);
      entry.reject(err);
    }
  }

  /** A line longer than maxLineChars: if it answers a pending request, that request fails. */
  _onOverflow(prefix, length, lineNumber) {
    const match = /^\s*\{\s*"jsonrpc"\s*:\s*"2\.0"\s*,\s*"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")/.exec(prefix);
    let id;
    try { id = match ? JSON.parse(match[1]) : undefined; } catch { id = undefined; } // a bad escape: no id
    const entry = id === undefined ? undefined : this._pending.get(id);
    const details = { line: prefix.slice(0, 300), line_number: lineNumber, length_chars: length, max_line_chars: this.maxLineChars };
    if (!entry) {
      this._protocolError(`the sidecar wrote a line of ${length} characters, more than the client's limit of ${this.maxLineChars}; it was dropped`, details);
      return;
    }
    const err = new BmadDataError('PROTOCOL_ERROR', `the answer to request ${entry.id} (${entry.method}) is ${length} characters long, more than the client's limit of ${this.maxLineChars}; it was dropped`, {
      hint: 'Ask for fewer rows (max_rows, or --max-rows) or write the result to a file (output, or --save).',
      details: { ...details, method: entry.method },
    });
    this._emitProtocolError(err);
    entry.reject(err);
  }

  _protocolError(message, details) {
    this._emitProtocolError(protocolError(message, details));
  }

  _emitProtocolError(error) {
    this.protocolErrors = (this.protocolErrors || 0) + 1;
    if (this.listenerCount('protocol-error') > 0) this.emit('protocol-error', error);
    else this.emit('error', error);
  }

  _rejectAll(error) {
    for (const entry of [...this._pending.values()]) {
      entry.reject(new BmadDataError(error.code, error.message, {
        hint: error.hint, retryable: error.retryable, details: { ...error.details, method: entry.method },
      }));
    }
  }

  _scheduleRestart() {
    if (Date.now() - this._startedAt >= this.restartPolicy.stableMs) this._attempt = 0;
    this._attempt += 1;
    if (this._attempt > this.restartPolicy.maxRestarts) {
      this._fatal = new BmadDataError('SIDECAR_UNAVAILABLE', `the sidecar exited ${this._attempt - 1} times in a row; giving up`, {
        hint: 'Run `bmad-data doctor` to see why it cannot start.', details: { restarts: this.restarts },
      });
      this.emit('fatal', this._fatal);
      return;
    }
    const delay = Math.min(this.restartPolicy.maxDelayMs, this.restartPolicy.baseDelayMs * 2 ** (this._attempt - 1));
    this.emit('restart', { attempt: this._attempt, delay_ms: delay });
    // Requests made while we wait queue on the new launch.
    this._ready = new Promise((resolve, reject) => { this._pendingRestart = { resolve, reject }; })
      .then(() => this._launch());
    this._ready.catch(() => {}); // a failed relaunch ends in 'close', which schedules the next try
    this._restartTimer = setTimeout(() => {
      this._restartTimer = null;
      this.restarts += 1;
      this._pendingRestart.resolve();
    }, delay);
  }

  /** Shut the sidecar down politely (shutdown, exit), then by force after timeoutMs. */
  async close({ timeoutMs = 3000 } = {}) {
    this._closing = true;
    if (this._restartTimer) {
      clearTimeout(this._restartTimer);
      this._pendingRestart.reject(closedError());
    }
    const child = this._child;
    if (!child) return;
    const closed = new Promise((resolve) => child.once('close', resolve));
    const force = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    try {
      await Promise.race([this._send('shutdown', {}, { timeoutMs }), closed]);
    } catch {
      // The sidecar may already be gone or refuse; the exit notification and EOF still end it.
    }
    this.notify('exit');
    if (child.stdin.writable) child.stdin.end();
    await closed;
    clearTimeout(force);
  }
}

function protocolError(message, details) {
  return new BmadDataError('PROTOCOL_ERROR', message, {
    hint: 'The sidecar must write only JSON-RPC messages to stdout; something printed to it. Check the sidecar version and any code that prints.',
    details,
  });
}

/** A JSON-RPC error object: {code: integer, message: string, data?}. */
function isErrorObject(error) {
  return error !== null && typeof error === 'object' && !Array.isArray(error)
    && Number.isInteger(error.code) && typeof error.message === 'string';
}

function exited(info) {
  if (info.daemon) {
    return new BmadDataError('SIDECAR_EXITED', `the daemon (pid ${info.pid ?? 'unknown'}) closed the connection while the request was in flight`, {
      hint: info.expected ? 'The client was closed.' : `It stopped or died; the next command starts a new one. Its log: ${info.log}`,
      retryable: !info.expected,
      details: info,
    });
  }
  const how = info.signal ? `was killed by ${info.signal}` : `exited with code ${info.exit_code}`;
  return new BmadDataError('SIDECAR_EXITED', `the sidecar ${how} while the request was in flight`, {
    hint: info.expected ? 'The client was closed.' : 'The bridge restarts it; retry the request. The stderr tail in details says why it stopped.',
    retryable: !info.expected,
    details: info,
  });
}

function unavailable(client, err) {
  return new BmadDataError('SIDECAR_UNAVAILABLE', `cannot start the sidecar with ${client.python} (${client.pythonSource}): ${err.message}`, {
    hint: 'Run `npx bmad-data setup` (a venv with the sidecar), or set BMAD_DATA_PYTHON to a Python >= 3.11 that has it; in a bmad-data checkout, run scripts/bootstrap.sh.',
    details: { python: client.python, source: client.pythonSource, errno: err.code || null },
  });
}

function closedError() {
  return new BmadDataError('SIDECAR_UNAVAILABLE', 'the client was closed', { hint: 'Create a new SidecarClient.' });
}

function cancelled(method, why) {
  return new BmadDataError('CANCELLED', `request '${method}' was cancelled: ${why}`, { severity: 'info', hint: 'Nothing was run.' });
}

/** The error for a request we cancelled: TIMEOUT for our own deadline, else CANCELLED. */
function cancelError(entry, fromSidecar) {
  const acknowledged = fromSidecar !== null;
  const { reason, timeoutMs } = entry.cancelReason;
  if (reason === 'timeout') {
    return new BmadDataError('TIMEOUT', `request '${entry.method}' passed the client's ${timeoutMs} ms deadline and was cancelled`, {
      hint: 'Raise timeoutMs, or narrow the query.', retryable: true, details: { source: 'client', timeout_ms: timeoutMs, acknowledged },
    });
  }
  if (acknowledged) return fromSidecar;
  return new BmadDataError('CANCELLED', `request '${entry.method}' was cancelled; the sidecar did not confirm it in time`, {
    severity: 'info', hint: 'The sidecar may still be finishing the work; check `bmad-data status`.', details: { acknowledged },
  });
}

module.exports = { SidecarClient };
