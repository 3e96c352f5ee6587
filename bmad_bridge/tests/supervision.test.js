'use strict';
/** The sidecar dies: in-flight requests fail with SIDECAR_EXITED, the client restarts it. */
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { once } = require('node:events');
const { SidecarClient } = require('../lib/client');
const { startClient, alive, waitFor, busySql, tempDir } = require('./helpers');

test('SIGKILL on the sidecar: SIDECAR_EXITED with the signal and stderr tail, then a restart', async (t) => {
  const client = await startClient({ restart: { baseDelayMs: 50 } });
  t.after(() => client.close());
  const firstPid = client.pid;
  const events = { exit: null, restart: null, ready: 0 };
  client.on('exit', (info) => { events.exit = info; });
  client.on('restart', (info) => { events.restart = info; });
  client.on('ready', () => { events.ready += 1; });

  const pending = client.request('query.run', { sql: busySql(3e10) });
  await new Promise((r) => setTimeout(r, 300));
  process.kill(firstPid, 'SIGKILL');
  await assert.rejects(pending, (err) => {
    assert.equal(err.code, 'SIDECAR_EXITED');
    assert.equal(err.details.signal, 'SIGKILL');
    assert.equal(err.details.pid, firstPid);
    assert.equal(err.details.method, 'query.run');
    assert.equal(err.retryable, true);
    assert.match(err.details.stderr_tail, /ready/, 'the stderr tail holds the sidecar\'s log');
    return true;
  });
  assert.equal(events.exit.expected, false);
  assert.equal(events.restart.attempt, 1);

  // A request made during the backoff waits for the restarted, re-initialized sidecar.
  const r = await client.request('query.run', { sql: 'SELECT 7 AS x' });
  assert.equal(r.rows[0][0], 7);
  assert.notEqual(client.pid, firstPid);
  assert.equal(client.restarts, 1);
  assert.equal(events.ready, 1, 'initialize was replayed on the new sidecar');
});

test('a sidecar that keeps dying is given up on after maxRestarts, with SIDECAR_UNAVAILABLE', async (t) => {
  const client = new SidecarClient({
    cwd: tempDir(), initialize: false, args: ['-c', 'import sys; sys.stderr.write("boom\\n"); sys.exit(3)'],
    restart: { maxRestarts: 2, baseDelayMs: 20 },
  });
  t.after(() => client.close());
  const delays = [];
  client.on('restart', (info) => delays.push(info.delay_ms));
  const fatal = once(client, 'fatal');
  await client.start();
  const [err] = await fatal;
  assert.equal(err.code, 'SIDECAR_UNAVAILABLE');
  assert.deepEqual(delays, [20, 40], 'exponential backoff');
  await assert.rejects(client.request('query.run', { sql: 'SELECT 1' }), { code: 'SIDECAR_UNAVAILABLE' });
});

test('an exit code (not a signal) is reported with the stderr tail', async (t) => {
  const client = new SidecarClient({
    cwd: tempDir(), args: ['-c', 'import sys; sys.stdin.readline(); sys.stderr.write("fatal: cannot open state dir\\n"); sys.exit(3)'],
    restart: { maxRestarts: 0 },
  });
  t.after(() => client.close());
  await assert.rejects(client.start(), (err) => {
    assert.equal(err.code, 'SIDECAR_EXITED');
    assert.equal(err.details.exit_code, 3);
    assert.equal(err.details.signal, null);
    assert.match(err.details.stderr_tail, /cannot open state dir/);
    assert.match(err.message, /exited with code 3/);
    return true;
  });
});

test('a missing interpreter is SIDECAR_UNAVAILABLE at once, without restarts', async (t) => {
  const client = new SidecarClient({ python: '/nonexistent/python3', cwd: tempDir() });
  t.after(() => client.close());
  let restarts = 0;
  client.on('restart', () => { restarts += 1; });
  await assert.rejects(client.start(), (err) => {
    assert.equal(err.code, 'SIDECAR_UNAVAILABLE');
    assert.equal(err.details.errno, 'ENOENT');
    assert.match(err.hint, /BMAD_DATA_PYTHON/);
    return true;
  });
  assert.equal(restarts, 0);
});

test('close() shuts the sidecar down and later requests are refused', async () => {
  const client = await startClient();
  const pid = client.pid;
  await client.close();
  assert.equal(alive(pid), false);
  await assert.rejects(client.request('system.resources'), { code: 'SIDECAR_UNAVAILABLE' });
});

test('the sidecar dies with its parent, even when the parent is SIGKILLed', async () => {
  const script = `
    const { SidecarClient } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'client'))});
    const c = new SidecarClient({ cwd: ${JSON.stringify(tempDir())} });
    c.start().then(() => process.stdout.write(String(c.pid) + '\\n'));
    setInterval(() => {}, 1000);
  `;
  const parent = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [chunk] = await once(parent.stdout, 'data');
  const sidecarPid = Number(String(chunk).trim());
  assert.ok(alive(sidecarPid));
  parent.kill('SIGKILL');
  assert.ok(await waitFor(() => !alive(sidecarPid), { timeoutMs: 10000 }), 'the orphaned sidecar exits on stdin EOF');
});

test('the sidecar is killed when its parent exits normally', async () => {
  const script = `
    const { SidecarClient } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'client'))});
    const c = new SidecarClient({ cwd: ${JSON.stringify(tempDir())} });
    c.start().then(() => { process.stdout.write(String(c.pid) + '\\n'); process.exit(0); });
  `;
  const parent = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [chunk] = await once(parent.stdout, 'data');
  const sidecarPid = Number(String(chunk).trim());
  await once(parent, 'close');
  assert.ok(await waitFor(() => !alive(sidecarPid), { timeoutMs: 5000 }));
});
