'use strict';
/** scripts/latency-bench.js runs end to end against a real sidecar, an echo server and @duckdb/node-api; it prints figures, which are not judged here. */
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { runProcess } = require('./helpers');
const { summary, parseArgs } = require('../scripts/latency-bench');

const SCRIPT = path.join(__dirname, '..', 'scripts', 'latency-bench.js');

test('summary takes nearest-rank percentiles; bad options say what is accepted', () => {
  assert.deepEqual(summary([4, 1, 3, 2]), { p50: 3, p99: 4, max: 4, calls: 4 });
  assert.throws(() => parseArgs(['--fast']), /unknown option --fast; options: --calls N/);
  assert.throws(() => parseArgs(['--calls', '3']), /--calls must be a number >= 10/);
});

test('--json: every target through the bridge, with its percentiles (the Python figures: tests/test_bench_latency.py)', { timeout: 120000 }, async () => {
  const r = await runProcess(process.execPath, [SCRIPT, '--calls', '10', '--skip-loop', '--skip-python', '--json'], { timeoutMs: 110000 });
  assert.equal(r.code, 0, r.stderr);
  const figures = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(figures.bridge), ['echo', 'config.get', 'system.resources', 'query.run SELECT 42', 'anchor SELECT 42']);
  for (const f of Object.values(figures.bridge)) assert.ok(f.calls === 10 && f.p50 > 0 && f.p50 <= f.p99 && f.p99 <= f.max);
  assert.equal(figures.loop, null);
  assert.equal(figures.python, null);
});

test('the latency-bench commands in docs/performance/latency.md use options it has', () => {
  const fs = require('node:fs');
  const text = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'performance', 'latency.md'), 'utf8');
  const commands = [...text.matchAll(/latency-bench\.js([^\n`]*)/g)].map((m) => m[1].trim().split(/\s+/).filter(Boolean));
  assert.ok(commands.length >= 1);
  for (const args of commands) assert.doesNotThrow(() => parseArgs(args), args.join(' '));
});
