'use strict';
/**
 * The `monitor --web` server against a real sidecar, over real HTTP: the page and uPlot come from
 * this server only (no external URL, a CSP of 'self'), the token and the Host header are checked,
 * the history back-fills, samples stream as Server-Sent Events, and when the sidecar dies every
 * page is told. The browser's view of it is tests/monitor-browser.test.js.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const { spawn } = require('node:child_process');
const { startDashboard } = require('../lib/web/dashboard');
const { EXIT_CODES } = require('../lib/errors');
const { BIN, runCli, startClient, tempDir, waitFor } = require('./helpers');

/** GET `url` with raw headers; resolves {status, headers, body}. */
function get(url, headers = {}) {
  return new Promise((resolve, reject) => {
    http.get(url, { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    }).on('error', reject);
  });
}

/** Open the event stream; `events` fills with {event, data} as they arrive. */
function openEvents(url) {
  const stream = { events: [], req: null };
  let rest = '';
  stream.req = http.get(url, (res) => {
    stream.headers = res.headers;
    res.setEncoding('utf8');
    res.on('data', (chunk) => {
      const blocks = (rest + chunk).split('\n\n');
      rest = blocks.pop();
      for (const block of blocks) {
        const event = /^event: (.+)$/m.exec(block);
        const data = /^data: (.+)$/m.exec(block);
        if (event && data) stream.events.push({ event: event[1], data: JSON.parse(data[1]) });
      }
    });
  });
  stream.req.on('error', () => {});
  return stream;
}

test('the page, its scripts and uPlot come from this server, behind the token, with no external URL', async () => {
  const client = await startClient();
  const dashboard = await startDashboard({ client, intervalMs: 200 });
  try {
    assert.match(dashboard.url, /^http:\/\/127\.0\.0\.1:\d+\/[0-9a-f]{32}\/$/);
    const page = await get(dashboard.url);
    assert.equal(page.status, 200);
    assert.match(page.headers['content-security-policy'], /default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'/);
    for (const name of ['', 'app.js', 'style.css']) {
      const { body } = await get(dashboard.url + name);
      assert.doesNotMatch(body, /https?:\/\//, `${name || 'index.html'} names an external URL`);
    }
    const uplot = await get(`${dashboard.url}uplot.js`);
    assert.equal(uplot.status, 200);
    assert.equal(uplot.body, fs.readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8'));
    const origin = `http://127.0.0.1:${dashboard.port}`;
    assert.equal((await get(`${origin}/`)).status, 404);
    assert.match((await get(`${origin}/${'0'.repeat(32)}/`)).body, /open the URL bmad-data monitor --web printed/);
    assert.equal((await get(dashboard.url, { Host: `evil.example:${dashboard.port}` })).status, 403);
    assert.equal((await get(dashboard.url, { Host: `localhost:${dashboard.port}` })).status, 200);
  } finally {
    await dashboard.close();
    await client.close();
  }
});

test('history back-fills, samples stream as events, and a dead sidecar is announced to every page', { timeout: 60000 }, async () => {
  const client = await startClient();
  const dashboard = await startDashboard({ client, intervalMs: 200 });
  try {
    const stream = openEvents(`${dashboard.url}events`);
    assert.ok(await waitFor(() => stream.events.filter((e) => e.event === 'metrics').length >= 2, { timeoutMs: 20000 }));
    assert.equal(stream.headers['content-type'], 'text/event-stream');
    const history = JSON.parse((await get(`${dashboard.url}history`)).body);
    assert.ok(history.samples.length >= 2 && history.samples[0].machine.effective_memory_bytes > 0);
    assert.equal(history.interval_ms, 200);
    assert.deepEqual(history.active, []);
    process.kill(client.pid, 'SIGKILL');
    assert.ok(await waitFor(() => stream.events.some((e) => e.event === 'sidecar'), { timeoutMs: 10000 }));
    const { data } = stream.events.find((e) => e.event === 'sidecar');
    assert.equal(data.state, 'gone');
    assert.match(data.message, /killed by SIGKILL/);
    const late = openEvents(`${dashboard.url}events`);
    assert.ok(await waitFor(() => late.events.some((e) => e.event === 'sidecar')), 'a page opened afterwards is told too');
    const after = await get(`${dashboard.url}history`);
    assert.equal(after.status, 503);
    assert.equal(JSON.parse(after.body).sidecar.state, 'gone');
    stream.req.destroy();
    late.req.destroy();
  } finally {
    await dashboard.close();
    await client.close();
  }
});

test('bmad-data monitor --web --port: prints the URL, serves it, stops on Ctrl+C; a taken port says what to do', { timeout: 60000 }, async () => {
  const blocker = http.createServer();
  await new Promise((r) => blocker.listen(0, '127.0.0.1', r));
  const taken = blocker.address().port;
  try {
    const busy = await runCli(['monitor', '--web', '--port', String(taken), '--json']);
    assert.equal(busy.code, EXIT_CODES.INVALID_PARAMS);
    assert.match(busy.lines.at(-1).error.message, new RegExp(`port ${taken} on 127.0.0.1 is in use`));
    assert.match(busy.lines.at(-1).error.hint, /another --port, or leave --port out/);
  } finally {
    blocker.close();
  }
  const child = spawn(process.execPath, [BIN, 'monitor', '--web', '--json'], { cwd: tempDir(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c) => { out += c; });
  const closed = new Promise((r) => child.on('close', r));
  assert.ok(await waitFor(() => out.includes('\n'), { timeoutMs: 30000 }));
  const { type, url } = JSON.parse(out.split('\n')[0]);
  assert.equal(type, 'dashboard');
  assert.equal((await get(url)).status, 200);
  child.kill('SIGINT');
  assert.equal(await closed, 0);
  const last = JSON.parse(out.trim().split('\n').at(-1));
  assert.deepEqual(last.data, { stopped: 'interrupted', url });
});
