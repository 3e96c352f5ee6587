'use strict';
/**
 * `bmad-data monitor`'s live view against a real sidecar while a real query runs: the terminal
 * frames (redrawn in place, no line wider than the terminal) show the job's memory against its
 * ceiling and DuckDB's limit and the alert as it fires and resolves; the line mode (a pipe) writes
 * one JSON line per sample and per alert.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { PassThrough } = require('node:stream');
const { watch } = require('../lib/cli/commands/monitor');
const { Reporter } = require('../lib/cli/output');
const { frameLines, bar } = require('../lib/cli/monitor-view');
const { width } = require('../lib/cli/format');
const { startClient, waitFor } = require('./helpers');
const { HEAVY, startLowWarningClient } = require('./monitor-fixtures');

/** A stream that records what is written; `tty` makes it claim to be a terminal of cols x rows. */
function recorder({ tty = false, cols = 80, rows = 24 } = {}) {
  const stream = new PassThrough();
  stream.text = '';
  stream.on('data', (chunk) => { stream.text += chunk; });
  if (tty) Object.assign(stream, { isTTY: true, columns: cols, rows });
  return stream;
}

/** The frames a TerminalScreen drew: split where it hides the cursor or moves back up. */
function frames(text) {
  return text.split(/\x1b\[(?:\?25l|\d+F)/).slice(1)
    .map((f) => f.replace(/\x1b\[(?:K|J|\?25h)/g, '').split('\n').filter((l) => l !== ''));
}

function plainReporter(stdout) {
  return new Reporter({ json: false, stdout, stderr: recorder(), env: { NO_COLOR: '1' } });
}

test('bar: fill in proportion, the mark inside, never wider than asked', () => {
  assert.equal(bar(50, 100, 10), '█████░░░░░');
  assert.equal(bar(50, 100, 10, 80), '█████░░░│░');
  assert.equal(bar(500, 100, 10), '██████████');
  assert.equal(bar(5, 0, 4), '░░░░');
});

test('the terminal view and the line mode follow a real query: memory, the alert firing and resolving', { timeout: 120000 }, async () => {
  const client = await startLowWarningClient();
  try {
    const tty = recorder({ tty: true, cols: 100, rows: 40 });
    const pipe = recorder();
    const stop = new AbortController();
    const viewing = watch({ client, reporter: plainReporter(tty), signal: stop.signal }, { interval: 0.2 }, tty);
    const pipeReporter = plainReporter(pipe);
    const piping = watch({ client, reporter: pipeReporter, signal: stop.signal }, { interval: 0.2 }, pipe);
    await waitFor(() => frames(tty.text).length >= 2, { timeoutMs: 20000 });
    // a narrower terminal: the screen is cleared once and the frame drawn again at the new width
    Object.assign(tty, { columns: 60 });
    tty.emit('resize');
    const [, afterResize] = tty.text.split('\x1b[2J\x1b[H');
    const [narrow] = frames(afterResize || '');
    assert.ok(narrow && narrow[0].startsWith('bmad-data monitor'), `redrawn at once: ${JSON.stringify(afterResize)}`);
    for (const line of narrow) assert.ok(width(line) <= 60, `wider than 60 columns after the resize: ${line}`);
    Object.assign(tty, { columns: 100 });
    tty.emit('resize');
    const answer = await client.request('query.run', { sql: HEAVY, job_id: 'heavy-groupby' });
    assert.deepEqual(answer.rows, [[2000000]]);
    const resolved = () => pipe.text.split('\n').some((l) => l.includes('"type":"alert"') && l.includes('"state":"resolved"'));
    assert.ok(await waitFor(resolved, { timeoutMs: 30000 }), `no alert resolved:\n${pipe.text.slice(-2000)}`);
    await waitFor(() => frames(tty.text).at(-1).some((l) => l.includes('resolved')), { timeoutMs: 5000 });
    stop.abort();
    const viewed = await viewing;
    assert.equal(viewed.stopped, 'interrupted');
    assert.ok(viewed.samples >= 2 && viewed.samples < frames(tty.text).length, 'a frame per sample, plus the snapshot and alerts');
    assert.equal((await piping).stopped, 'interrupted');

    const drawn = frames(tty.text);
    for (const frame of drawn) {
      assert.ok(frame.length <= 39, `a frame of ${frame.length} lines on a 40-row terminal`);
      for (const line of frame) assert.ok(width(line) <= 100, `wider than the terminal: ${line}`);
    }
    const busy = drawn.find((f) => f.some((l) => l.startsWith('Job ')));
    assert.ok(busy, 'no frame showed the running job');
    assert.ok(drawn.some((f) => f.some((l) => /^Job \d+ · pid \d+ · [\d.]+ m?s · query [0-9a-f]{12} · heavy-groupby/.test(l))), 'the job\'s name (system.resources) by its worker');
    assert.match(busy.join('\n'), /RSS +[█░]+ [\d.]+ [KMG]?B of ceiling [\d.]+ [KMG]?B \(\d+%\)/);
    assert.match(busy.join('\n'), /managed +[█░]+ [\d.]+ [KMG]?B of DuckDB limit [\d.]+ [KMG]?B/);
    assert.ok(drawn.some((f) => f.some((l) => /● WARNING firing duckdb_memory_warning +DuckDB memory usage at [\d.]+% of limit/.test(l))));
    assert.ok(drawn.at(-1).some((l) => l.includes('No job running.')));
    assert.ok(tty.text.endsWith('\x1b[?25h'), 'the cursor is shown again');

    const lines = pipe.text.trim().split('\n').map((l) => JSON.parse(l));
    const samples = lines.filter((l) => l.type === 'sample');
    assert.ok(samples.some((s) => s.workers.length === 1 && s.workers[0].rss_bytes > 0 && s.workers[0].managed_bytes > 0));
    const alerts = lines.filter((l) => l.type === 'alert' && l.rule === 'duckdb_memory_warning');
    assert.deepEqual(alerts.map((a) => a.state), ['firing', 'resolved']);
    assert.equal(alerts[0].id, alerts[1].id);
    // and for the person at the pipe's end, in BMad's style on stderr
    assert.match(pipeReporter.stderr.text, /⚠️ {2}warning alert duckdb_memory_warning firing: DuckDB memory usage at [\d.]+% of limit/);
    assert.match(pipeReporter.stderr.text, /\nwarning alert duckdb_memory_warning resolved: resolved: /);
  } finally {
    await client.close();
  }
});

test('frameLines fits any terminal: narrow, wide, short; what does not fit is counted', async () => {
  const client = await startClient();
  let sample;
  try {
    sample = (await client.request('monitor.snapshot')).metrics;
  } finally {
    await client.close();
  }
  const worker = { job_id: '7', pid: 1, rss_bytes: 3e8, managed_bytes: 1e8, unmanaged_bytes: 2e8, spilled_bytes: 0, ceiling_bytes: 5e8, duckdb_limit_bytes: 4e8, elapsed_ms: 4200, query_hash: 'abcdef012345' };
  const busy = { ...sample, workers: Array.from({ length: 6 }, (_, i) => ({ ...worker, job_id: String(i) })) };
  const alerts = Array.from({ length: 8 }, (_, i) => ({ id: `a${i}`, rule: 'duckdb_memory_warning', severity: 'warning', state: 'firing', message: 'DuckDB memory usage at 80% of limit (300MB)', at: sample.at_ms, actions_taken: ['monitor'] }));
  for (const [cols, rows] of [[40, 12], [80, 24], [200, 60]]) {
    const lines = frameLines({ sample: busy, alerts, named: [], intervalS: 1 }, { cols, rows });
    assert.ok(lines.length <= rows - 1, `${lines.length} lines for ${rows} rows`);
    for (const line of lines) assert.ok(width(line) <= cols, `${cols} columns: ${line}`);
    if (rows < 60) assert.ok(lines.some((l) => /^… \d+ more/.test(l)), lines.join('\n'));
  }
  const named = frameLines({ sample: { ...sample, workers: [worker] }, alerts: [], named: [{ job_id: 'sales', worker_pid: 1, parts_done: 2, parts_total: 8 }], intervalS: 1 }, { cols: 120 });
  assert.match(named.join('\n'), /Job 7 · pid 1 · 4\.2 s · query abcdef012345 · sales part 3\/8 \(2 done\)/);
  // past 90%: RSS of the ceiling in red, managed of DuckDB's limit in yellow
  const tag = (name) => (s) => `<${name}>${s}</${name}>`;
  const paint = { bad: tag('bad'), warn: tag('warn'), bar: tag('bar') };
  const hot = { ...worker, rss_bytes: 4.6e8, managed_bytes: 3.7e8 };
  const [, , , , rss, managed] = frameLines({ sample: { ...sample, workers: [hot] }, alerts: [], named: [], intervalS: 1 }, { cols: 120, paint });
  assert.match(rss, /^ {2}RSS +<bad>█+░*<\/bad>/);
  assert.match(managed, /^ {2}managed +<warn>█+░*<\/warn>/);
  const [, , , , cool] = frameLines({ sample: { ...sample, workers: [worker] }, alerts: [], named: [], intervalS: 1 }, { cols: 120, paint });
  assert.match(cool, /^ {2}RSS +<bar>/);
});
