'use strict';
/** `bmad-data benchmark` end to end: a real sidecar benchmarking real sidecars and plain DuckDB. */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { EXIT_CODES } = require('../lib/errors');
const { REGRESSION_EXIT, progressLine } = require('../lib/cli/commands/benchmark');
const { runCli, tempDir } = require('./helpers');

function only(lines, type) {
  return lines.filter((l) => l.type === type);
}

/** A private state directory, so runs and data of one test never meet another's. */
function isolated() {
  const dir = tempDir('bmad-data-bench-');
  return { dir, env: { BMAD_DATA_STATE_DIR: path.join(dir, 'state'), NO_COLOR: '1' } };
}

test('CI: the smoke suite through the CLI, --json: every question agrees on both sides', async () => {
  const { dir, env } = isolated();
  const r = await runCli(['benchmark', '--suite', 'smoke', '--json'], { env, cwd: dir, timeoutMs: 300000 });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const [result] = only(r.lines, 'result');
  const { cases, run } = result.data;
  assert.equal(run.suite, 'smoke');
  assert.deepEqual(cases.map((c) => c.question), ['scan_filter', 'groupby_low', 'groupby_high', 'join_small', 'window', 'holistic', 'load_csv']);
  for (const c of cases) {
    assert.equal(c.sidecar.status, 'ok', JSON.stringify(c));
    assert.equal(c.plain.status, 'ok', JSON.stringify(c));
    assert.ok(c.answers_agree && c.sidecar.runs === 3 && c.ratio > 0);
  }
  const progress = only(r.lines, 'progress');
  assert.ok(progress.length >= 7 * 8, `${progress.length} progress lines`);
  assert.ok(progress.every((p) => p.command === 'benchmark' && p.questions === 7 && p.size === '1MB'));
  assert.equal(result.data.comparison, null);
});

test('a newly failing question is a regression: exit 15, distinct from errors; the report is written', async () => {
  const { dir, env } = isolated();
  const args = ['benchmark', '--suite', 'smoke', '--question', 'scan_filter', '--repeat', '1'];
  const base = await runCli([...args, '--label', 'base', '--json'], { env, cwd: dir, timeoutMs: 120000 });
  assert.equal(base.code, 0, base.stdout);
  // 1 ms is too short for any question: the candidate's runs stop with TIMEOUT
  const r = await runCli([...args, '--timeout', '1', '--compare', 'base', '--output', 'report.md'], { env, cwd: dir, timeoutMs: 120000 });
  assert.equal(r.code, REGRESSION_EXIT, r.stdout + r.stderr);
  assert.ok(!Object.values(EXIT_CODES).includes(REGRESSION_EXIT));
  assert.match(r.stdout, /│ Question +│ Size +│ Baseline/);
  assert.match(r.stdout, /newly_failing/);
  assert.match(r.stderr, /1 regression\(s\) against 'base' \(exit 15\)/);
  const report = fs.readFileSync(path.join(dir, 'report.md'), 'utf8');
  assert.match(report, /## Comparison/);
  assert.match(report, /\*\*newly_failing\*\*/);
});

test('--list shows the recorded runs; bad sizes are a usage error', async () => {
  const { dir, env } = isolated();
  const run = await runCli(['benchmark', '--question', 'scan_filter', '--repeat', '1', '--label', 'mine'], { env, cwd: dir, timeoutMs: 120000 });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /│ scan_filter │ 1.00 MB/);
  const listed = await runCli(['benchmark', '--list', '--json'], { env, cwd: dir });
  const [result] = only(listed.lines, 'result');
  assert.deepEqual(result.data.runs.map((x) => [x.label, x.status, x.suite]), [['mine', 'done', 'smoke']]);
  const bad = await runCli(['benchmark', '--size', '1XB'], { env, cwd: dir });
  assert.equal(bad.code, EXIT_CODES.USAGE);
  assert.match(bad.stderr, /'1XB' is not a size/);
});

test('the progress line says which question, size, side and run', () => {
  const line = progressLine({ percent: 42, question: 3, questions: 7, name: 'window', size: '1MB', side: 'sidecar', repeat: 2 });
  assert.equal(line, '[████░░░░░░]  42%  3/7 window · 1MB · sidecar · run 2');
  assert.match(progressLine({ percent: 0, question: 1, questions: 2, name: 'q', size: '1GB', side: 'data', repeat: 0 }), /writing data/);
});

test('every bmad-data benchmark command in docs/performance/benchmarks.md and the pack task has known options', () => {
  const { buildProgram } = require('../lib/cli/main');
  const bench = buildProgram().commands.find((c) => c.name() === 'benchmark');
  const known = new Set(bench.options.flatMap((o) => [o.long, o.short]).filter(Boolean));
  const repo = path.join(__dirname, '..', '..');
  let count = 0;
  for (const file of ['docs/performance/benchmarks.md', 'expansion-pack/tasks/run-benchmark.md']) {
    const text = fs.readFileSync(path.join(repo, file), 'utf8');
    for (const [command] of text.matchAll(/bmad-data benchmark[^`\n]*/g)) {
      for (const word of command.split(/\s+/).filter((w) => /^--?[a-z]/i.test(w))) {
        assert.ok(known.has(word) || word === '--json', `${file}: \`${command}\` uses ${word}, which benchmark does not have`);
      }
      count += 1;
    }
  }
  assert.ok(count >= 6, `checked ${count} commands`);
});
