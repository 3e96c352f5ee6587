'use strict';
/** The `bmad-data` CLI end to end: real sidecar, JSON lines, exit codes, gating, BMad output. */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { EXIT_CODES } = require('../lib/errors');
const { runCli, packCopy, tempDir } = require('./helpers');

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[/;

function only(lines, type) {
  return lines.filter((l) => l.type === type);
}

test('query --json prints JSON lines only: one result line with columns, rows and stats', async () => {
  const r = await runCli(['query', "SELECT 42 AS answer, 'a,b' AS s", '--json']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(r.stderr, '', '--json keeps stderr silent');
  const [result] = only(r.lines, 'result');
  assert.equal(result.command, 'query');
  assert.deepEqual(result.data.rows, [[42, 'a,b']]);
  assert.equal(typeof result.data.stats.elapsed_ms, 'number');
});

test('query prints a table on stdout and BMad status lines on stderr; NO_COLOR means no colour', async () => {
  const r = await runCli(['query', 'SELECT 1 AS x, 2 AS y'], { env: { NO_COLOR: '1', FORCE_COLOR: '3' } });
  assert.equal(r.code, 0);
  assert.match(r.stdout, /│ x │ y │/);
  assert.match(r.stderr, /🔍 Running query\.\.\./);
  assert.match(r.stderr, /✅ Query completed: 1 rows/);
  assert.doesNotMatch(r.stdout + r.stderr, ANSI);
});

test('FORCE_COLOR gives colour even when not a TTY', async () => {
  const r = await runCli(['query', 'SELECT 1 AS x'], { env: { FORCE_COLOR: '1', NO_COLOR: '' } });
  assert.match(r.stderr, ANSI);
});

test('query --output csv writes RFC 4180 CSV; --file reads the SQL', async () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'q.sql'), "SELECT 'x\"y' AS a, NULL AS b UNION ALL SELECT 'p,q', 3");
  const r = await runCli(['query', '--file', 'q.sql', '--output', 'csv'], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines[0], 'a,b');
  assert.ok(lines.includes('"x""y",'));
  assert.ok(lines.includes('"p,q",3'));
});

test('query --save writes the full result to a file; the file reads back', async () => {
  const dir = tempDir();
  const r = await runCli(['query', 'SELECT * FROM range(50000) t(i)', '--save', 'out.parquet', '--json'], { cwd: dir });
  assert.equal(r.code, 0, r.stdout);
  const [result] = only(r.lines, 'result');
  assert.equal(result.data.output.rows, 50000);
  assert.equal(result.data.output.format, 'parquet', 'format inferred from the extension');
  assert.ok(fs.statSync(path.join(dir, 'out.parquet')).size > 0);
  const back = await runCli(['query', "SELECT count(*) AS n FROM 'out.parquet'", '--json'], { cwd: dir });
  assert.equal(only(back.lines, 'result')[0].data.rows[0][0], 50000);
  const again = await runCli(['query', 'SELECT 1', '--save', 'out.parquet', '--json'], { cwd: dir });
  assert.notEqual(again.code, 0, 'an existing file is not replaced without --overwrite');
});

test('query --parts splits the query and combines it exactly; --job-id names it; the split is said', async () => {
  const sql = 'SELECT i % 7 AS k, count(*) AS n, median(i) AS m FROM range(7000) t(i) GROUP BY k ORDER BY k';
  const r = await runCli(['query', sql, '--parts', '3', '--job-id', 'cli-split', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const [result] = only(r.lines, 'result');
  assert.equal(result.data.stats.partitions, 3);
  assert.deepEqual(result.data.rows.map((row) => row[1]), [1000, 1000, 1000, 1000, 1000, 1000, 1000]);
  const human = await runCli(['query', sql, '--parts', '2'], { env: { NO_COLOR: '1' } });
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stderr, /Ran in 2 parts \(as asked\)/);
  const refused = await runCli(['query', sql, '--parts', '1', '--json']);
  assert.notEqual(refused.code, 0);
  assert.match(only(refused.lines, 'error')[0].error.hint, /--parts 0/, 'the hint names the CLI flag');
});

test('--max-rows caps printed rows and says the result is truncated', async () => {
  const r = await runCli(['query', 'SELECT * FROM range(100) t(i)', '--max-rows', '5'], { env: { NO_COLOR: '1' } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n').length, 4 + 5);
  assert.match(r.stderr, /⚠️ +showing the first 5 rows/);
});

test('a SQL error: exit code 8, an error line with code, message and hint', async () => {
  const r = await runCli(['query', 'SELEC 1', '--json']);
  assert.equal(r.code, EXIT_CODES.SQL_ERROR);
  const [err] = only(r.lines, 'error');
  assert.equal(err.command, 'query');
  assert.equal(err.error.code, 'SQL_ERROR');
  assert.ok(err.error.hint);
});

test('a failure in human mode: red ❌ line, then the error code and the next step', async () => {
  const r = await runCli(['query', 'SET memory_limit = \'100GB\''], { env: { NO_COLOR: '1' } });
  assert.equal(r.code, EXIT_CODES.ACCESS_DENIED);
  assert.match(r.stderr, /❌ Command 'query' failed: /);
  assert.match(r.stderr, /Error code: ACCESS_DENIED/);
  assert.match(r.stderr, /Next step: /);
});

test('analyze --json profiles a CSV: rows and per-column statistics', async () => {
  const dir = tempDir();
  const rows = ['id,amount,city'];
  for (let i = 0; i < 500; i += 1) rows.push(`${i},${(i % 50) + 0.5},${i % 3 === 0 ? '' : `c${i % 7}`}`);
  fs.writeFileSync(path.join(dir, 'sales.csv'), `${rows.join('\n')}\n`);
  const r = await runCli(['analyze', 'sales.csv', '--json'], { cwd: dir });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const { data } = only(r.lines, 'result')[0];
  assert.equal(data.format, 'csv');
  assert.equal(data.row_count, 500);
  const byName = Object.fromEntries(data.columns.map((c) => [c.name, c]));
  assert.equal(byName.id.min, 0);
  assert.equal(byName.id.max, 499);
  assert.ok(byName.city.null_count > 0);
});

test('analyze prints a table with the BMad headline', async () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'd.csv'), 'a,b\n1,x\n2,y\n');
  const r = await runCli(['analyze', 'd.csv', '--monitor'], { cwd: dir, env: { NO_COLOR: '1' } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /🔍 Starting data analysis\.\.\./);
  assert.match(r.stdout, /📊 Analysis Results/);
  assert.match(r.stdout, /│ name +│ type/);
  assert.match(r.stderr, /Peak memory seen: RSS/);
  assert.match(r.stderr, /✅ Analysis completed successfully/);
});

test('analyze of a missing file is INPUT_ERROR, exit 7', async () => {
  const r = await runCli(['analyze', 'nope.parquet', '--json']);
  assert.equal(r.code, EXIT_CODES.INPUT_ERROR, r.stdout);
  assert.equal(only(r.lines, 'error')[0].error.code, 'INPUT_ERROR');
});

test('status --json reports settings with sources, resources and flags', async () => {
  const r = await runCli(['status', '--json']);
  assert.equal(r.code, 0, r.stdout);
  const { data } = only(r.lines, 'result')[0];
  assert.ok(data.settings.memory_budget_bytes > 0);
  assert.ok(data.settings.sources.memory_budget_bytes);
  assert.ok(data.resources.total_memory_bytes > 0);
  assert.equal(data.flags.duckdb_analytics.enabled, true);
});

test('doctor --json: one check line per check, each with a status, all passing here', async () => {
  const r = await runCli(['doctor', '--json']);
  const checks = only(r.lines, 'check');
  const names = checks.map((c) => c.name);
  for (const n of ['node', 'python', 'sidecar', 'config', 'flags', 'spill', 'memory']) assert.ok(names.includes(n), `doctor checks ${n}`);
  for (const c of checks) assert.ok(['ok', 'warn', 'fail'].includes(c.status));
  assert.equal(r.code, checks.some((c) => c.status === 'fail') ? EXIT_CODES.CHECKS_FAILED : 0);
});

test('doctor with a broken interpreter fails the python check with a fix, exit 14', async () => {
  const r = await runCli(['doctor', '--json'], { env: { BMAD_DATA_PYTHON: '/nonexistent/python' } });
  assert.equal(r.code, EXIT_CODES.CHECKS_FAILED);
  const python = only(r.lines, 'check').find((c) => c.name === 'python');
  assert.equal(python.status, 'fail');
  assert.match(python.fix, /BMAD_DATA_PYTHON/);
});

test('cleanup --json reports bytes freed and files removed', async () => {
  const r = await runCli(['cleanup', '--force', '--json']);
  assert.equal(r.code, 0, r.stdout);
  const { data } = only(r.lines, 'result')[0];
  assert.equal(typeof data.bytes_freed, 'number');
  assert.equal(typeof data.files_removed, 'number');
});

test('monitor --count 2 --interval 1 --json prints two samples', async () => {
  const r = await runCli(['monitor', '--count', '2', '--interval', '1', '--json']);
  assert.equal(r.code, 0, r.stdout);
  const samples = only(r.lines, 'sample');
  assert.equal(samples.length, 2);
  assert.ok(samples[0].machine.effective_memory_bytes > 0);
});

test('bad arguments are a usage error, exit 2', async () => {
  const r = await runCli(['query', '--max-rows', 'lots', 'SELECT 1']);
  assert.equal(r.code, EXIT_CODES.USAGE);
  const none = await runCli(['query', '--json']);
  assert.equal(none.code, EXIT_CODES.USAGE);
  assert.equal(only(none.lines, 'error')[0].error.code, 'USAGE');
});

test('duckdb_analytics off: the command names the flag and the file, exit 3', async () => {
  const dir = packCopy({ flags: { duckdb_analytics: false } });
  const r = await runCli(['query', 'SELECT 1', '--json'], { env: { BMAD_DATA_CONFIG_DIR: dir } });
  assert.equal(r.code, EXIT_CODES.FEATURE_DISABLED, r.stdout);
  const { error } = only(r.lines, 'error')[0];
  assert.equal(error.code, 'FEATURE_DISABLED');
  assert.equal(error.details.flag, 'duckdb_analytics');
  assert.match(error.details.reason, /feature-flags\.yaml:\d+/);
  const human = await runCli(['analyze', 'x.csv', '--config-dir', dir], { env: { NO_COLOR: '1' } });
  assert.equal(human.code, EXIT_CODES.FEATURE_DISABLED);
  assert.match(human.stderr, /Flag: duckdb_analytics/);
  assert.match(human.stderr, /feature-flags\.yaml/);
});

test('a YAML syntax error in the flags file is CONFIG_INVALID naming file:line, not an undeclared flag', async () => {
  const dir = packCopy();
  const flagsFile = path.join(dir, 'config', 'feature-flags.yaml');
  const lines = fs.readFileSync(flagsFile, 'utf8').split('\n').length;
  fs.appendFileSync(flagsFile, '\nbroken: [unclosed\nnext: 1\n');
  const r = await runCli(['query', 'SELECT 1', '--json'], { env: { BMAD_DATA_CONFIG_DIR: dir } });
  assert.equal(r.code, EXIT_CODES.CONFIG_INVALID, r.stdout);
  const { error } = only(r.lines, 'error')[0];
  assert.equal(error.code, 'CONFIG_INVALID');
  assert.equal(error.details.file, flagsFile);
  assert.equal(error.details.line, lines + 2);
  assert.match(error.message, /YAML syntax error/);
});

test('a flag whose dependency is off is off: monitor needs duckdb_monitoring', async () => {
  const dir = packCopy({ flags: { duckdb_monitoring: false } });
  const r = await runCli(['monitor', '--count', '1', '--json'], { env: { BMAD_DATA_CONFIG_DIR: dir } });
  assert.equal(r.code, EXIT_CODES.FEATURE_DISABLED, r.stdout);
  const { error } = only(r.lines, 'error')[0];
  assert.match(error.message, /duckdb_monitoring/);
  const opt = await runCli(['analyze', 'x.csv', '--monitor', '--json'], { env: { BMAD_DATA_CONFIG_DIR: dir } });
  assert.equal(opt.code, EXIT_CODES.FEATURE_DISABLED);
  assert.match(only(opt.lines, 'error')[0].error.message, /--monitor/);
});

test('a subcommand disabled in duckdb-cli-integration-config.yaml: COMMAND_DISABLED naming file and key', async () => {
  const dir = packCopy({ cli: (doc) => { doc.cli_integration.commands.data.subcommands.cleanup.enabled = false; } });
  const r = await runCli(['cleanup', '--json'], { env: { BMAD_DATA_CONFIG_DIR: dir } });
  assert.equal(r.code, EXIT_CODES.COMMAND_DISABLED, r.stdout);
  const { error } = only(r.lines, 'error')[0];
  assert.equal(error.code, 'COMMAND_DISABLED');
  assert.equal(error.details.flag, 'cli_integration.commands.data.subcommands.cleanup.enabled');
  assert.match(error.details.file, /duckdb-cli-integration-config\.yaml$/);
  assert.ok(error.details.line > 0);
  const lines = fs.readFileSync(error.details.file, 'utf8').split('\n');
  assert.match(lines[error.details.line - 1], /enabled: false/, 'the line points at the switch');
});
