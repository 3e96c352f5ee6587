'use strict';
/**
 * The shared daemon, from the bridge's side: where its socket is, connecting to it, starting one.
 *
 * One daemon per user and working directory (`python -m sidecar daemon`, sidecar/daemon/): its
 * socket is `daemon-<first 12 hex of sha256(cwd)>.sock` in the runtime directory, which is
 * BMAD_DATA_RUNTIME_DIR, else $XDG_RUNTIME_DIR/bmad-data, else run/ in the state directory;
 * sidecar/daemon/paths.py computes the same, and a daemon started here is handed
 * BMAD_DATA_RUNTIME_DIR so both always agree. A started daemon is detached and unref'd (it
 * outlives the command, never the idle timeout), its log goes to daemon-<hash>.log in the state
 * directory. BMAD_DATA_NO_DAEMON=1 or `--no-daemon` keeps the one-sidecar-per-command behaviour.
 */
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { EventEmitter } = require('node:events');
const { PassThrough } = require('node:stream');
const { isCheckout, sidecarEnv } = require('./locate');

const EXIT_RUNNING = 3; // sidecar/daemon/main.py: another daemon already serves the socket
const START_TIMEOUT_MS = 30000;

function stateDir(root, env = process.env, cwd = process.cwd()) {
  if (env.BMAD_DATA_STATE_DIR) return path.resolve(cwd, env.BMAD_DATA_STATE_DIR);
  return path.join(isCheckout(root) ? root : cwd, '.bmad-data');
}

function runtimeDir(root, env = process.env, cwd = process.cwd()) {
  if (env.BMAD_DATA_RUNTIME_DIR) return path.resolve(env.BMAD_DATA_RUNTIME_DIR);
  if (env.XDG_RUNTIME_DIR) return path.join(env.XDG_RUNTIME_DIR, 'bmad-data');
  return path.join(isCheckout(root) ? path.join(root, '.bmad-data') : path.join(cwd, '.bmad-data'), 'run');
}

/** The daemon's file stem for a working directory (sidecar/daemon/paths.py daemon_name). */
function daemonName(cwd) {
  return `daemon-${crypto.createHash('sha256').update(cwd).digest('hex').slice(0, 12)}`;
}

/** {dir, socket, log} of the daemon serving `cwd`. */
function daemonPaths({ root, env = process.env, cwd = process.cwd() }) {
  const dir = runtimeDir(root, env, cwd);
  const stem = daemonName(cwd);
  return { dir, socket: path.join(dir, `${stem}.sock`), log: path.join(stateDir(root, env, cwd), `${stem}.log`) };
}

/** Why the daemon is not to be used ('--no-daemon', the env var, the platform), or null. */
function daemonDisabled(env = process.env, option = true) {
  if (option === false) return '--no-daemon';
  if (env.BMAD_DATA_NO_DAEMON && env.BMAD_DATA_NO_DAEMON !== '0') return `BMAD_DATA_NO_DAEMON=${env.BMAD_DATA_NO_DAEMON}`;
  if (process.platform === 'win32') return 'Windows has no Unix sockets for it';
  return null;
}

/** Connect to a socket; rejects with the system error (ENOENT: none, ECONNREFUSED: stale). */
function connectSocket(socketPath, timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    const timer = setTimeout(() => { socket.destroy(); reject(Object.assign(new Error(`no answer from ${socketPath} within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })); }, timeoutMs);
    socket.once('connect', () => { clearTimeout(timer); socket.removeAllListeners('error'); resolve(socket); });
    socket.once('error', (err) => { clearTimeout(timer); reject(err); });
  });
}

const ABSENT = new Set(['ENOENT', 'ECONNREFUSED']);

function logTail(file) {
  try {
    return fs.readFileSync(file, 'utf8').slice(-1500);
  } catch {
    return '';
  }
}

/** Start a detached daemon for `cwd` and resolve with a socket connected to it. */
async function startDaemon({ python, root, env, cwd, paths }) {
  fs.mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  fs.mkdirSync(path.dirname(paths.log), { recursive: true });
  const log = fs.openSync(paths.log, 'a', 0o600);
  let child;
  try {
    child = spawn(python, ['-P', '-m', 'sidecar', 'daemon'], {
      cwd, env: sidecarEnv(root, env, { BMAD_DATA_RUNTIME_DIR: paths.dir }), detached: true, stdio: ['ignore', log, log],
    });
  } finally {
    fs.closeSync(log);
  }
  let ended = null;
  child.once('exit', (code, signal) => { ended = { code, signal }; });
  child.once('error', (err) => { ended = { error: err }; });
  child.unref();
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    try {
      return await connectSocket(paths.socket);
    } catch (err) {
      if (!ABSENT.has(err.code)) throw err;
    }
    if (ended && ended.code !== EXIT_RUNNING) {
      const why = ended.error ? ended.error.message : `it exited with ${ended.code ?? ended.signal}`;
      throw new Error(`the daemon did not start (${why}); its log ${paths.log} ends: ${logTail(paths.log).trim().split('\n').slice(-3).join(' | ')}`);
    }
    if (Date.now() > deadline) throw new Error(`the daemon did not open ${paths.socket} within ${START_TIMEOUT_MS / 1000} s (log: ${paths.log})`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A socket to the running daemon, starting one when none runs; `{socket, started}`. */
async function ensureDaemon(options) {
  try {
    return { socket: await connectSocket(options.paths.socket), started: false };
  } catch (err) {
    if (!ABSENT.has(err.code)) throw err;
  }
  return { socket: await startDaemon(options), started: true };
}

/** Whether process `pid` still exists (a daemon that closed its socket may still be releasing its lock). */
function processAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

/**
 * Resolve true once nothing listens on `socketPath` any more and the daemon's process `pid` (when
 * known) has ended: a daemon closes its socket first and releases its lock last, and a new daemon
 * started before that exits at once (EXIT_RUNNING). False after `timeoutMs`.
 */
async function waitGone(socketPath, { pid = null, timeoutMs = 20000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    let listening = true;
    try {
      (await connectSocket(socketPath, 500)).destroy();
    } catch (err) {
      if (ABSENT.has(err.code)) listening = false;
    }
    if (!listening && !(pid && processAlive(pid))) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

/**
 * A connection to the daemon, shaped as the child process SidecarClient drives: `stdin` and
 * `stdout` are the socket, `stderr` stays empty (the daemon logs to its file), `kill()` drops the
 * connection, and 'close' fires when the socket closes, whoever closed it.
 */
class DaemonConnection extends EventEmitter {
  constructor(socket, paths) {
    super();
    this.isDaemon = true;
    this.socket = socket;
    this.paths = paths;
    this.pid = null; // the daemon's, from initialize's `daemon` member
    this.stdin = socket;
    this.stdout = socket;
    this.stderr = new PassThrough();
    socket.on('error', (err) => { this.lastError = err; });
    socket.once('close', () => { this.stderr.end(); this.emit('close', null, null); });
  }

  kill() {
    this.socket.destroy();
  }
}

/** The sidecar version this bridge would start: sidecar/__init__.py of a checkout, else null (unknown). */
function expectedVersion(root) {
  try {
    const text = fs.readFileSync(path.join(root, 'sidecar', '__init__.py'), 'utf8');
    const match = /^__version__\s*=\s*["']([^"']+)["']/m.exec(text);
    return match ? match[1] : null;
  } catch {
    return null;
  }
}

module.exports = {
  EXIT_RUNNING, DaemonConnection, connectSocket, daemonDisabled, daemonName, daemonPaths, ensureDaemon, expectedVersion, runtimeDir, stateDir, startDaemon, waitGone,
};
