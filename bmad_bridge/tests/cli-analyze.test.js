'use strict';
/**
 * `bmad-data analyze` with the CSV reader options and --union-by-name, through a real sidecar:
 * the sniffer's decisions and the findings are shown, and their hints name the CLI's flags.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { EXIT_CODES } = require('../lib/errors');
const { parseCsvOption } = require('../lib/cli/commands/analyze');
const { runCli, tempDir } = require('./helpers');

const result = (r) => r.lines.find((l) => l.type === 'result').data;

/** A semicolon CSV with a short row: DuckDB's sniffer takes it for one column named 'id;amount;city'. */
function raggedSemicolons() {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'semi.csv'), 'id;amount;city\n1;25;Paris\n2;35\n4;10;Nice\n');
  return dir;
}

test('without --delimiter a failed sniff is a suspect_sniff warning whose hint names the flags', async () => {
  const dir = raggedSemicolons();
  const human = await runCli(['analyze', 'semi.csv'], { cwd: dir, env: { NO_COLOR: '1' } });
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stderr, /⚠️ {2}suspect_sniff: the CSV sniffer found a single column named 'id;amount;city'/);
  assert.match(human.stderr, /Next step: Pass the CSV options a query would need, e\.g\. --delimiter ';' \(with --csv null_padding=true for short rows\), or --ignore-errors/);
  assert.match(human.stdout, /🧭 CSV Sniffer\nDelimiter: ',' +Quote: /);
  const json = await runCli(['analyze', 'semi.csv', '--json'], { cwd: dir });
  assert.deepEqual(result(json).findings.map((f) => [f.kind, f.column]), [['suspect_sniff', 'id;amount;city']]);
});

test("--delimiter ';' with --csv null_padding=true gives the real columns, and the sniffer shows ';'", async () => {
  const dir = raggedSemicolons();
  const r = await runCli(['analyze', 'semi.csv', '--delimiter', ';', '--csv', 'null_padding=true', '--json'], { cwd: dir });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const data = result(r);
  assert.deepEqual(data.columns.map((c) => c.name), ['id', 'amount', 'city']);
  assert.equal(data.row_count, 3);
  assert.equal(data.csv.delimiter, ';');
  assert.deepEqual(data.findings, []);
  const human = await runCli(['analyze', 'semi.csv', '--delimiter', ';', '--csv', 'null_padding=true'], { cwd: dir, env: { NO_COLOR: '1' } });
  assert.match(human.stdout, /Delimiter: ';' +Quote: /);
  assert.match(human.stdout, /Read it in SQL as: read_csv\('semi\.csv', .*delim=';', null_padding=true\)/);
  assert.doesNotMatch(human.stderr, /suspect_sniff/);
});

test('--ignore-errors skips the short row; --no-header reads the first line as data', async () => {
  const dir = raggedSemicolons();
  const skipped = result(await runCli(['analyze', 'semi.csv', '--delimiter', ';', '--ignore-errors', '--json'], { cwd: dir }));
  assert.deepEqual(skipped.columns.map((c) => c.name), ['id', 'amount', 'city']);
  assert.equal(skipped.row_count, 2);
  const headless = result(await runCli(['analyze', 'semi.csv', '--delimiter', ';', '--ignore-errors', '--no-header', '--json'], { cwd: dir }));
  assert.equal(headless.csv.header, false);
  assert.equal(headless.row_count, 3);
});

test('a bad CSV option is INVALID_PARAMS with a hint in CLI terms', async () => {
  const dir = raggedSemicolons();
  const wide = await runCli(['analyze', 'semi.csv', '--delimiter', ';;;;;', '--json'], { cwd: dir });
  assert.equal(wide.code, EXIT_CODES.INVALID_PARAMS, wide.stdout);
  assert.match(wide.lines.at(-1).error.message, /csv\.delimiter must be 1 to 4 bytes/);
  const unknown = await runCli(['analyze', 'semi.csv', '--csv', 'delimeter=;', '--json'], { cwd: dir });
  assert.equal(unknown.code, EXIT_CODES.INVALID_PARAMS, unknown.stdout);
  assert.match(unknown.lines.at(-1).error.message, /delimeter/);
  assert.match(unknown.lines.at(-1).error.hint, /`bmad-data analyze --help`/);
  fs.writeFileSync(path.join(dir, 'x.json'), '{"a": 1}\n');
  const notCsv = await runCli(['analyze', 'x.json', '--delimiter', ';', '--json'], { cwd: dir });
  assert.equal(notCsv.code, EXIT_CODES.INVALID_PARAMS, notCsv.stdout);
  assert.match(notCsv.lines.at(-1).error.hint, /^Drop the CSV options \(--delimiter/);
  const malformed = await runCli(['analyze', 'semi.csv', '--csv', 'null_padding'], { cwd: dir });
  assert.notEqual(malformed.code, 0);
  assert.match(malformed.stderr, /expected key=value/);
});

test('parseCsvOption: JSON values are typed, other text stays text, a quoted value stays text', () => {
  assert.deepEqual(parseCsvOption('null_padding=true'), { null_padding: true });
  assert.deepEqual(parseCsvOption('nullstr=NA', { skip: 1 }), { skip: 1, nullstr: 'NA' });
  assert.deepEqual(parseCsvOption('nullstr="0"'), { nullstr: '0' });
  assert.deepEqual(parseCsvOption('decimal_separator=,'), { decimal_separator: ',' });
});

/** Two Parquet files in a fresh directory: part-1 (id, name) and part-2 with `second`'s columns. */
function parquetPair(second) {
  const dir = tempDir();
  const python = process.env.BMAD_DATA_PYTHON || 'python3';
  execFileSync(python, ['-c', [
    'import duckdb',
    "duckdb.sql(\"COPY (SELECT range AS id, 'x' AS name FROM range(3)) TO 'part-1.parquet'\")",
    `duckdb.sql("COPY (SELECT ${second} FROM range(4)) TO 'part-2.parquet'")`,
  ].join('\n')], { cwd: dir });
  return dir;
}

test('a Parquet glob whose later file adds a column: schema_differs names --union-by-name, which reads every column', async () => {
  const dir = parquetPair("range AS id, 'y' AS name, range * 2 AS score");
  const plain = await runCli(['analyze', 'part-*.parquet'], { cwd: dir, env: { NO_COLOR: '1' } });
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stderr, /⚠️ {2}schema_differs: 1 of 2 files have a schema different from the first file's/);
  assert.match(plain.stderr, /Next step: A query takes the first file's columns .* Pass --union-by-name to analyze/);
  assert.doesNotMatch(plain.stdout, /CSV Sniffer/);
  const first = result(await runCli(['analyze', 'part-*.parquet', '--json'], { cwd: dir }));
  assert.deepEqual(first.columns.map((c) => c.name), ['id', 'name']);
  const r = await runCli(['analyze', 'part-*.parquet', '--union-by-name', '--json'], { cwd: dir });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const data = result(r);
  assert.equal(data.union_by_name, true);
  assert.deepEqual(data.columns.map((c) => c.name), ['id', 'name', 'score']);
  assert.equal(data.row_count, 7);
  assert.deepEqual(data.findings.map((f) => f.kind), ['schema_differs']);
});

test('a Parquet glob whose later file lacks a column fails as a query would, and --union-by-name reads it', async () => {
  const dir = parquetPair('range AS id, range * 2 AS score');
  const plain = await runCli(['analyze', 'part-*.parquet'], { cwd: dir, env: { NO_COLOR: '1' } });
  assert.equal(plain.code, EXIT_CODES.INPUT_ERROR, plain.stderr);
  assert.match(plain.stderr, /Next step: A query takes the first file's columns .* Pass --union-by-name to analyze/);
  const data = result(await runCli(['analyze', 'part-*.parquet', '--union-by-name', '--json'], { cwd: dir }));
  assert.deepEqual(data.columns.map((c) => c.name).sort(), ['id', 'name', 'score']);
  assert.equal(data.columns.find((c) => c.name === 'name').null_count, 4);
});
