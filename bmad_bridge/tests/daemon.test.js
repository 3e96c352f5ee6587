'use strict';
/**
 * The shared daemon through the real CLI: started by the first command, shared by the next ones
 * and by concurrent ones, replaced when it is of another version, survived when it dies. Each test
 * has a runtime dir and a working dir of its own and stops every daemon it started (teardown).
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { EXIT_CODES } = require('../lib/errors');
const daemons = require('../lib/daemon');
const { REPO, PACK, BIN, tempDir, runCli, alive, waitFor, busySql } = require('./helpers');

/** A private runtime dir, cwd and env for one test; `stop()` ends every daemon started in it. */
function place(t) {
  const runtime = fs.mkdtempSync('/tmp/bdn-');
  const cwd = tempDir('bmad-data-daemon-cwd-');
  const state = tempDir('bmad-data-daemon-state-');
  const env = {
    BMAD_DATA_NO_DAEMON: '',
    BMAD_DATA_RUNTIME_DIR: runtime,
    BMAD_DATA_STATE_DIR: state,
    BMAD_DATA_CONFIG_DIR: PACK,
    BMAD_DATA_DAEMON_IDLE_TIMEOUT: '120', // even a daemon a failed test leaves ends on its own
  };
  const paths = daemons.daemonPaths({ root: REPO, env, cwd: fs.realpathSync(cwd) });
  const stop = async () => {
    for (const name of fs.readdirSync(runtime).filter((n) => n.endsWith('.lock'))) {
      const pid = Number.parseInt(fs.readFileSync(path.join(runtime, name), 'utf8'), 10);
      if (!pid || !alive(pid)) continue;
      process.kill(pid, 'SIGTERM');
      if (!(await waitFor(() => !alive(pid), { timeoutMs: 20000 }))) process.kill(pid, 'SIGKILL');
    }
    fs.rmSync(runtime, { recursive: true, force: true });
  };
  t.after(stop);
  return { runtime, cwd, env, paths, state };
}

async function status(p) {
  const r = await runCli(['daemon', 'status', '--json'], { cwd: p.cwd, env: p.env });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  return r.lines.find((l) => l.type === 'result').data;
}

test('the first command starts a daemon, later ones share it; daemon status and stop', async (t) => {
  const p = place(t);
  const first = await runCli(['query', 'SELECT 42 AS x', '--json'], { cwd: p.cwd, env: p.env });
  assert.equal(first.code, 0, first.stdout + first.stderr);
  assert.deepEqual(first.lines.find((l) => l.type === 'result').data.rows, [[42]]);
  assert.ok(fs.existsSync(p.paths.socket), `no socket at ${p.paths.socket}`);
  assert.equal(fs.statSync(p.paths.socket).mode & 0o777, 0o600);
  const before = await status(p);
  assert.equal(before.running, true);
  assert.equal(before.socket, p.paths.socket);
  const second = await runCli(['query', 'SELECT 43 AS x', '--json'], { cwd: p.cwd, env: p.env });
  assert.deepEqual(second.lines.find((l) => l.type === 'result').data.rows, [[43]]);
  const after = await status(p);
  assert.equal(after.pid, before.pid, 'the second command used the same daemon');
  assert.ok(fs.readFileSync(p.paths.log, 'utf8').includes('ready on'), 'the daemon logs to the state dir');
  const stopped = await runCli(['daemon', 'stop', '--json'], { cwd: p.cwd, env: p.env });
  assert.equal(stopped.lines.find((l) => l.type === 'result').data.stopped, true);
  assert.ok(await waitFor(() => !alive(before.pid), { timeoutMs: 20000 }));
  assert.equal(fs.existsSync(p.paths.socket), false);
  assert.equal((await status(p)).running, false);
});

test('--no-daemon and BMAD_DATA_NO_DAEMON=1 run a private sidecar and start no daemon', async (t) => {
  const p = place(t);
  const flag = await runCli(['--no-daemon', 'query', 'SELECT 1 AS x', '--json'], { cwd: p.cwd, env: p.env });
  assert.equal(flag.code, 0, flag.stderr);
  const envOff = await runCli(['query', 'SELECT 1 AS x', '--json'], { cwd: p.cwd, env: { ...p.env, BMAD_DATA_NO_DAEMON: '1' } });
  assert.equal(envOff.code, 0, envOff.stderr);
  assert.deepEqual(fs.readdirSync(p.runtime), [], 'no daemon was started');
});

test('a daemon that cannot start: the command runs on a private sidecar and -v says why', async (t) => {
  const p = place(t);
  const env = { ...p.env, BMAD_DATA_RUNTIME_DIR: path.join(p.runtime, 'x'.repeat(110)) }; // too long for a socket
  const r = await runCli(['-v', 'query', 'SELECT 5 AS x'], { cwd: p.cwd, env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /│ 5 │/);
  assert.match(r.stderr, /not using the daemon \(the daemon did not start .*at most 107.*\); starting a private sidecar/);
});

test('a daemon killed mid-request: SIDECAR_EXITED with a hint, and the next command starts a new one', async (t) => {
  const p = place(t);
  const pending = runCli(['query', busySql(40e9), '--json'], { cwd: p.cwd, env: p.env, timeoutMs: 120000 });
  assert.ok(await waitFor(async () => fs.existsSync(p.paths.socket) && (await status(p)).budget.running_jobs === 1, { timeoutMs: 60000, stepMs: 300 }));
  const { pid } = await status(p);
  process.kill(pid, 'SIGKILL');
  const r = await pending;
  assert.equal(r.code, EXIT_CODES.SIDECAR_EXITED, r.stdout);
  const error = r.lines.find((l) => l.type === 'error').error;
  assert.equal(error.code, 'SIDECAR_EXITED');
  assert.match(error.message, new RegExp(`the daemon \\(pid ${pid}\\) closed the connection`));
  assert.match(error.hint, /the next command starts a new one/);
  const next = await runCli(['query', 'SELECT 6 AS x', '--json'], { cwd: p.cwd, env: p.env });
  assert.equal(next.code, 0, next.stdout);
  assert.notEqual((await status(p)).pid, pid);
});

/** Start a daemon that says it is version 0.0.1 (a copy of the sidecar package, edited). */
/** A daemon of version 0.0.1 (a copy of the sidecar); `slowRelease` makes it hold its lock 3 s after closing its socket. */
async function oldDaemon(p, { slowRelease = false } = {}) {
  const root = tempDir('bmad-data-old-');
  fs.cpSync(path.join(REPO, 'sidecar'), path.join(root, 'sidecar'), { recursive: true, filter: (src) => !src.includes('__pycache__') });
  const init = path.join(root, 'sidecar', '__init__.py');
  fs.writeFileSync(init, fs.readFileSync(init, 'utf8').replace(/^__version__ = .*$/m, '__version__ = "0.0.1"'));
  if (slowRelease) {
    const service = path.join(root, 'sidecar', 'daemon', 'service.py');
    const text = fs.readFileSync(service, 'utf8');
    const slowed = text.replace(/( +)def _release_lock\(self\) -> None:\n/, (m, indent) => `${m}${indent}    time.sleep(3)\n`);
    assert.notEqual(slowed, text, 'the old daemon could not be slowed');
    fs.writeFileSync(service, slowed);
  }
  const python = process.env.BMAD_DATA_PYTHON || path.join(REPO, '.venv', 'bin', 'python');
  const child = spawn(python, ['-P', '-m', 'sidecar', 'daemon'], { cwd: p.cwd, env: { ...process.env, ...p.env, PYTHONPATH: root }, stdio: 'ignore', detached: true });
  child.unref();
  assert.ok(await waitFor(() => fs.existsSync(p.paths.socket), { timeoutMs: 60000 }), 'the old daemon did not start');
  return child.pid;
}

test('a daemon of another version: replaced when idle, left to its clients when busy', async (t) => {
  const p = place(t);
  const old = await oldDaemon(p);
  const r = await runCli(['query', 'SELECT 7 AS x', '--json'], { cwd: p.cwd, env: p.env });
  assert.equal(r.code, 0, r.stdout);
  assert.ok(await waitFor(() => !alive(old), { timeoutMs: 20000 }), 'the old daemon stopped');
  const fresh = await status(p);
  assert.notEqual(fresh.pid, old);
  assert.equal(fresh.version, require('../package.json').version);
  await runCli(['daemon', 'stop'], { cwd: p.cwd, env: p.env });
  assert.ok(await waitFor(() => !alive(fresh.pid), { timeoutMs: 20000 }));

  const slow = await oldDaemon(p, { slowRelease: true }); // its socket goes 3 s before its lock
  const after = await runCli(['query', 'SELECT 9 AS x', '--json'], { cwd: p.cwd, env: p.env });
  assert.equal(after.code, 0, after.stdout);
  assert.ok(!alive(slow), 'the command waited for the old daemon to end');
  const replaced = await status(p);
  assert.equal(replaced.version, require('../package.json').version, 'a fresh daemon replaced the slow one');
  await runCli(['daemon', 'stop'], { cwd: p.cwd, env: p.env });
  assert.ok(await waitFor(() => !alive(replaced.pid), { timeoutMs: 20000 }));

  const busy = await oldDaemon(p);
  const other = await daemons.connectSocket(p.paths.socket); // another client of the old daemon
  const during = await runCli(['query', 'SELECT 8 AS x', '--json'], { cwd: p.cwd, env: p.env });
  assert.equal(during.code, 0, during.stdout);
  assert.deepEqual(during.lines.find((l) => l.type === 'result').data.rows, [[8]]);
  assert.ok(alive(busy), 'a daemon with another client keeps serving it');
  other.destroy();
  assert.ok(await waitFor(() => !alive(busy), { timeoutMs: 20000 }), 'it stops once its last client left');
});

test('two concurrent commands share one daemon and one budget: one waits queued, neither is killed', async (t) => {
  const p = place(t);
  const env = { ...p.env, BMAD_DATA_MACHINE_BUDGET: '1GB' };
  const args = (rows) => ['query', busySql(rows), '--memory-limit', '700MB', '--parts', '0', '--json']; // whole: one reservation
  const a = runCli(args(1e9), { cwd: p.cwd, env, timeoutMs: 180000 });
  assert.ok(await waitFor(async () => fs.existsSync(p.paths.socket) && (await status(p)).budget.running_jobs === 1, { timeoutMs: 60000, stepMs: 200 }));
  const b = runCli(args(1e6), { cwd: p.cwd, env, timeoutMs: 180000 });
  const [ra, rb] = await Promise.all([a, b]);
  assert.equal(ra.code, 0, ra.stdout);
  assert.equal(rb.code, 0, rb.stdout);
  assert.ok(rb.lines.some((l) => l.type === 'progress' && l.phase === 'queued'), 'the second command waited for the budget');
  assert.equal(ra.lines.find((l) => l.type === 'result').data.rows[0][0], 142857126);
  assert.equal(rb.lines.find((l) => l.type === 'result').data.rows[0][0], 142820);
});

test('the start / status / stop block of docs/daemon.md runs as shown', async (t) => {
  const p = place(t);
  const doc = fs.readFileSync(path.join(REPO, 'docs', 'daemon.md'), 'utf8');
  const block = /```bash\n([\s\S]*?)```/.exec(doc)[1];
  const commands = block.split('\n').map((l) => l.replace(/#.*$/, '').trim()).filter(Boolean);
  assert.deepEqual(commands.map((c) => c.split(/\s+/).slice(0, 3).join(' ')), ['bmad-data daemon start', 'bmad-data daemon status', 'bmad-data daemon stop']);
  let pid = null;
  for (const command of commands) {
    const r = await runCli([...command.split(/\s+/).slice(1), '--json'], { cwd: p.cwd, env: p.env });
    assert.equal(r.code, 0, `${command}: ${r.stdout}${r.stderr}`);
    const data = r.lines.find((l) => l.type === 'result').data;
    pid = pid ?? data.pid;
    assert.equal(data.pid, pid, `${command} spoke to the daemon that start started`);
  }
  assert.ok(await waitFor(() => !alive(pid), { timeoutMs: 20000 }), 'stop stopped it');
});
