'use strict';
/**
 * Issue 10: monitor stops and leaks nothing; --json usage errors are one JSON error line;
 * doctor and cleanup print their results on stdout.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { EXIT_CODES } = require('../lib/errors');
const { runCli } = require('./helpers');

const FATAL_WARNINGS = { NODE_OPTIONS: `--require ${path.join(__dirname, 'warnings-fatal.js')}` };

test('monitor takes 15 samples with no listener leak (process warnings are fatal here)', { timeout: 60000 }, async () => {
  const r = await runCli(['monitor', '--count', '15', '--interval', '0.1', '--json'], { env: FATAL_WARNINGS });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.equal(r.lines.filter((l) => l.type === 'sample').length, 15);
  assert.equal(r.lines.at(-1).data.stopped, 'count reached');
});

test('monitor --count 0 is a usage error that says how to sample until Ctrl+C, not a silent endless run', async () => {
  const r = await runCli(['monitor', '--count', '0', '--json'], { timeoutMs: 20000 });
  assert.equal(r.signal, null, 'it ended by itself');
  assert.equal(r.code, EXIT_CODES.USAGE);
  const [line] = r.lines;
  assert.equal(line.error.code, 'USAGE');
  assert.match(line.error.message, /--count/);
  assert.match(line.error.message, /omit --count to sample until Ctrl\+C/);
  const human = await runCli(['monitor', '--interval', '0'], { env: { NO_COLOR: '1' }, timeoutMs: 20000 });
  assert.equal(human.code, EXIT_CODES.USAGE);
  assert.match(human.stderr, /--interval.*at least 0\.1/);
});

const USAGE_CASES = [
  [['monitor', '--count', '0'], 'monitor'],
  [['query', '--max-rows', 'ten', 'SELECT 1'], 'query'],
  [['analyze'], 'analyze'],
  [['query', '--output', 'xml', 'SELECT 1'], 'query'],
  [['query', '--max-rows', '1000001', 'SELECT 1'], 'query'],
  [['qeury', 'SELECT 1'], 'bmad-data'],
  [[], 'bmad-data'],
];

for (const [args, command] of USAGE_CASES) {
  test(`--json ${args.join(' ') || '(no command)'}: exactly one JSON error object, stderr silent`, async () => {
    const r = await runCli([...args, '--json'], { timeoutMs: 20000 });
    assert.equal(r.code, EXIT_CODES.USAGE);
    assert.equal(r.stderr, '', 'nothing non-JSON');
    assert.equal(r.lines.length, 1, r.stdout);
    const [line] = r.lines;
    assert.equal(line.type, 'error');
    assert.equal(line.command, command);
    assert.deepEqual(Object.keys(line.error).sort(), ['code', 'details', 'hint', 'message', 'retryable', 'rpc_code', 'severity']);
    assert.equal(line.error.code, 'USAGE');
    assert.equal(line.error.severity, 'error');
    assert.equal(line.error.retryable, false);
    assert.equal(line.error.rpc_code, null);
    assert.match(line.error.hint, command === 'bmad-data' ? /bmad-data --help/ : new RegExp(`bmad-data ${command} --help`));
    assert.doesNotMatch(line.error.message, /^error:/);
  });
}

test('doctor prints its checks on stdout; cleanup prints its result on stdout', async () => {
  const doctor = await runCli(['doctor'], { env: { NO_COLOR: '1' } });
  assert.equal(doctor.code, 0, doctor.stderr);
  for (const name of ['node', 'python', 'sidecar', 'config', 'flags', 'spill', 'memory']) {
    assert.match(doctor.stdout, new RegExp(`✅ ${name}: `));
  }
  assert.match(doctor.stdout, /All checks passed/);
  assert.doesNotMatch(doctor.stderr, /✅/);
  const cleanup = await runCli(['cleanup'], { env: { NO_COLOR: '1' } });
  assert.equal(cleanup.code, 0, cleanup.stderr);
  assert.match(cleanup.stdout, /Cleanup completed: freed .*, removed \d+ files/);
  assert.doesNotMatch(cleanup.stderr, /Cleanup completed/);
});
