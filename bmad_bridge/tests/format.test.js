'use strict';
/** Pure pieces: line splitting, tables, CSV, sizes, progress text, error mapping. */
const test = require('node:test');
const assert = require('node:assert/strict');
const { LineSplitter } = require('../lib/lines');
const { renderTable, toCsv, formatBytes, width } = require('../lib/cli/format');
const { progressText, detailLines } = require('../lib/cli/output');
const { BmadDataError, exitCodeFor, EXIT_CODES } = require('../lib/errors');

test('LineSplitter joins chunks split mid-line, strips CR, and flushes a last unterminated line', () => {
  const lines = [];
  const s = new LineSplitter((line, n) => lines.push([n, line]));
  s.push('{"a"');
  s.push(':1}\r\n{"b":2}\n\n{"c"');
  s.push(':3}');
  s.end();
  assert.deepEqual(lines, [[1, '{"a":1}'], [2, '{"b":2}'], [3, ''], [4, '{"c":3}']]);
});

test('renderTable right-aligns numeric columns, shows NULL, cuts long cells, counts wide characters', () => {
  const out = renderTable(['name', 'n'], [['a', 1], ['日本', null], ['x'.repeat(50), 123]], { maxCell: 10 }).split('\n');
  assert.equal(out[1], '│ name       │    n │');
  assert.equal(out[3], '│ a          │    1 │');
  assert.equal(out[4], '│ 日本       │ NULL │');
  assert.equal(out[5], `│ ${'x'.repeat(9)}… │  123 │`);
  assert.equal(width('日本'), 4);
});

test('toCsv quotes per RFC 4180 and writes NULL as an empty field', () => {
  assert.equal(toCsv(['a', 'b'], [['x"y', null], ['p,q', 3], ['l1\nl2', true]]), 'a,b\n"x""y",\n"p,q",3\n"l1\nl2",true');
});

test('formatBytes gives decimal units and, on request, binary ones too', () => {
  assert.equal(formatBytes(999), '999 B');
  assert.equal(formatBytes(1073741824), '1.07 GB');
  assert.equal(formatBytes(1073741824, { both: true }), '1.07 GB (1.00 GiB)');
  assert.equal(formatBytes(undefined), 'n/a');
});

test('progressText says "progress unknown" rather than invent a percent', () => {
  assert.match(progressText('Query', { percent: null, phase: 'running', rss_bytes: 2e9, spill_bytes: 0, elapsed_ms: 1500 }, 0),
    /^Query {2}progress unknown · running · RSS 2.00 GB · spill 0 B · 1.5s$/);
  assert.match(progressText('Query', { percent: 41.6 }, 2000), /42% · 2.0s/);
  assert.match(progressText('Query', { percent: 25, phase: 'partition', part: 3, parts: 8, elapsed_ms: 900 }, 0),
    /25% · partition · part 3\/8 · 0.9s/);
});

test('detailLines shows flag, file, diagnostics and the stderr tail', () => {
  const lines = detailLines({
    flag: 'duckdb_analytics', file: 'config/feature-flags.yaml', line: 6,
    diagnostics: [{ severity: 'error', file: 'a.yaml', line: 3, column: 5, path: 'x.memory_limit', message: 'bad size', hint: 'use 4GB' }],
    signal: 'SIGKILL', stderr_tail: 'one\ntwo\n',
  });
  assert.ok(lines.includes('Flag: duckdb_analytics'));
  assert.ok(lines.includes('File: config/feature-flags.yaml:6'));
  assert.ok(lines.includes('error a.yaml:3:5 (x.memory_limit): bad size — use 4GB'));
  assert.ok(lines.includes('Sidecar: signal SIGKILL'));
  assert.ok(lines.includes('  two'));
});

test('BmadDataError.fromRpc keeps the sidecar\'s data; numbers alone still map to a code', () => {
  const full = BmadDataError.fromRpc({ code: -32006, message: 'oom', data: { code: 'OUT_OF_MEMORY', message: 'out of memory', hint: 'h', retryable: true, details: { x: 1 } } });
  assert.equal(full.code, 'OUT_OF_MEMORY');
  assert.equal(full.retryable, true);
  assert.equal(full.rpcCode, -32006);
  assert.equal(exitCodeFor(full), EXIT_CODES.OUT_OF_MEMORY);
  assert.equal(BmadDataError.fromRpc({ code: -32601, message: 'nope' }).code, 'METHOD_NOT_FOUND');
  assert.equal(exitCodeFor(new Error('plain')), EXIT_CODES.INTERNAL);
  assert.equal(exitCodeFor(new BmadDataError('SOMETHING_NEW', 'x')), EXIT_CODES.INTERNAL);
});

test('renderTable and toCsv take any number of rows (no call-stack limit: 300k rows)', () => {
  const rows = Array.from({ length: 300000 }, (_, i) => [i, i % 3 === 0 ? null : `r${i}`]);
  const table = renderTable(['i', 's'], rows).split('\n');
  assert.equal(table.length, 300000 + 4);
  assert.equal(table[1], '│      i │ s       │');
  assert.equal(table[table.length - 2], '│ 299999 │ r299999 │');
  const csv = toCsv(['i', 's'], rows).split('\n');
  assert.equal(csv.length, 300001);
  assert.equal(csv[300000], '299999,r299999');
});

test('jsonPieces writes rows a batch at a time and the pieces join into the same JSON', () => {
  const { jsonPieces } = require('../lib/cli/format');
  const data = { columns: [{ name: 'i', type: 'BIGINT' }], rows: Array.from({ length: 4501 }, (_, i) => [i, `s${i}`, null, { k: [i] }]), stats: { n: 1 } };
  for (const indent of [0, 2]) {
    const pieces = [...jsonPieces(data, data.rows, { indent, batch: 1000 })];
    assert.ok(pieces.length >= 5, 'one piece per batch');
    assert.deepEqual(JSON.parse(pieces.join('')), data);
  }
  const compact = [...jsonPieces(data, data.rows)].join('');
  assert.equal(compact, JSON.stringify(data));
  assert.equal([...jsonPieces({ rows: [] }, [], { indent: 2 })].join(''), JSON.stringify({ rows: [] }, null, 2));
  assert.equal([...jsonPieces({ a: 1, b: null }, null)].join(''), '{"a":1,"b":null}', 'no rows: nulls stay null');
  assert.equal([...jsonPieces({ a: 1, b: null }, undefined, { indent: 2 })].join(''), JSON.stringify({ a: 1, b: null }, null, 2));
});

test('a big result reaches stdout in writes of about 1 MiB, never as one string', () => {
  const { Reporter } = require('../lib/cli/output');
  const { renderResult } = require('../lib/cli/commands/render');
  const rows = Array.from({ length: 200000 }, (_, i) => [i, `row ${i}`]);
  const data = { columns: [{ name: 'i' }, { name: 's' }], rows };
  for (const [format, json] of [['table', false], ['csv', false], ['json', false], ['table', true]]) {
    const writes = [];
    const sink = { write: (s) => { writes.push(s); return true; }, isTTY: false };
    const reporter = new Reporter({ json, stdout: sink, stderr: sink, env: {} });
    if (json) reporter.result('query', data);
    else renderResult(data, format, reporter);
    assert.ok(writes.length > 3, `${format}${json ? ' --json' : ''}: ${writes.length} writes`);
    assert.ok(writes.every((w) => w.length < 1.1 * 2 ** 20), `${format}: every write under ~1 MiB`);
    const text = writes.join('');
    if (format === 'table' && !json) assert.equal(text, `${renderTable(['i', 's'], rows)}\n`);
    if (format === 'csv') assert.equal(text, `${toCsv(['i', 's'], rows)}\n`);
    if (format === 'json') assert.deepEqual(JSON.parse(text), data);
    if (json) assert.deepEqual(JSON.parse(text), { type: 'result', command: 'query', data });
  }
});

test('the split line says where the parts ran and which hand-off rule sent them (stats.attempts, issue 16)', () => {
  const { splitLine } = require('../lib/cli/commands/query');
  const attempt = (extra) => ({ number: 1, rung: 'partition', outcome: 'ok', ...extra });
  const ray = { partitions: 8, attempts: [attempt({ executor: 'ray', hand_off: 'split_parts 8 > 4' })] };
  assert.equal(splitLine(ray), '🧩 Ran in 8 parts on Ray (as asked); hand-off rule: split_parts 8 > 4');
  const stayed = { partitions: 8, attempts: [attempt({ executor: 'local', hand_off: 'split_parts 8 > 4; stayed here: no ray package' })] };
  assert.equal(splitLine(stayed), '🧩 Ran in 8 parts (as asked); hand-off rule: split_parts 8 > 4; stayed here: no ray package');
  assert.equal(splitLine({ partitions: 2, attempts: [attempt({})] }), '🧩 Ran in 2 parts (as asked)');
});
