'use strict';
/** Issue 10: `bmad-data convert` and `bmad-data partition` through a real sidecar. */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { EXIT_CODES } = require('../lib/errors');
const { runCli, tempDir } = require('./helpers');

const result = (r) => r.lines.find((l) => l.type === 'result');
const errorOf = (r) => r.lines.find((l) => l.type === 'error').error;

function writeSales(file, rows, offset = 0) {
  const lines = ['id,region,year,amount'];
  for (let i = offset; i < offset + rows; i += 1) lines.push(`${i},${['north', 'south', 'east'][i % 3]},${2020 + (i % 4)},${i * 1.5}`);
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
}

async function scalar(dir, sql) {
  const r = await runCli(['query', sql, '--json'], { cwd: dir });
  assert.equal(r.code, 0, r.stdout);
  return result(r).data.rows[0][0];
}

test('convert writes Parquet that reads back; an existing output is kept unless --overwrite', { timeout: 120000 }, async () => {
  const dir = tempDir();
  writeSales(path.join(dir, 'sales.csv'), 5000);
  const human = await runCli(['convert', 'sales.csv', 'sales.parquet'], { cwd: dir, env: { NO_COLOR: '1' } });
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stderr, /🔄 Converting sales\.csv to Parquet\.\.\./);
  assert.match(human.stderr, /✅ Converted 1 file\(s\), 5000 rows/);
  assert.match(human.stdout, /sales\.parquet │ written │ 5000 │/);
  assert.equal(await scalar(dir, "SELECT count(*) FROM read_parquet('sales.parquet')"), 5000);

  writeSales(path.join(dir, 'sales.csv'), 7000);
  const again = await runCli(['convert', 'sales.csv', 'sales.parquet', '--json'], { cwd: dir });
  assert.equal(again.code, EXIT_CODES.INPUT_ERROR, again.stdout);
  assert.match(errorOf(again).message, /nothing converted: all 1 output\(s\) exist already/);
  assert.match(errorOf(again).hint, /--overwrite/);
  assert.equal(await scalar(dir, "SELECT count(*) FROM read_parquet('sales.parquet')"), 5000, 'the old file is untouched');

  const replaced = await runCli(['convert', 'sales.csv', 'sales.parquet', '--overwrite', '--json'], { cwd: dir });
  assert.equal(replaced.code, 0, replaced.stdout);
  assert.equal(result(replaced).data.converted, 1);
  assert.equal(await scalar(dir, "SELECT count(*) FROM read_parquet('sales.parquet')"), 7000);
});

test('convert of a directory resumes: outputs that exist are kept and named, the rest written', { timeout: 120000 }, async () => {
  const dir = tempDir();
  fs.mkdirSync(path.join(dir, 'in'));
  writeSales(path.join(dir, 'in', 'a.csv'), 1000);
  writeSales(path.join(dir, 'in', 'b.csv'), 2000, 1000);
  const first = await runCli(['convert', 'in', 'out', '--json'], { cwd: dir });
  assert.equal(first.code, 0, first.stdout);
  assert.equal(result(first).data.converted, 2);
  fs.rmSync(path.join(dir, 'out', 'b.parquet'));
  const resumed = await runCli(['convert', 'in', 'out', '--json'], { cwd: dir });
  assert.equal(resumed.code, 0, resumed.stdout);
  assert.deepEqual([result(resumed).data.converted, result(resumed).data.skipped], [1, 1]);
  const [warning] = resumed.lines.filter((l) => l.type === 'warning');
  assert.match(warning.message, /kept .*a\.parquet: it exists/);
  assert.equal(await scalar(dir, "SELECT count(*) FROM read_parquet('out/*.parquet')"), 3000);
});

test('convert refuses an output named like a text file: it writes Parquet only', async () => {
  const err = errorOf(await runCli(['convert', 'x.csv', 'y.csv', '--json']));
  assert.equal(err.code, 'USAGE');
  assert.match(err.hint, /y\.parquet/);
});

test('partition --by writes Hive directories that read back exactly; a finished run is not redone silently', { timeout: 120000 }, async () => {
  const dir = tempDir();
  writeSales(path.join(dir, 'sales.csv'), 6000);
  const r = await runCli(['partition', 'sales.csv', 'part', '--by', 'year,region', '--json'], { cwd: dir });
  assert.equal(r.code, 0, r.stdout);
  assert.equal(result(r).data.written, 1);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'part')).filter((f) => !f.startsWith('.')).sort(), ['year=2020', 'year=2021', 'year=2022', 'year=2023']);
  const grouped = "SELECT string_agg(year || ':' || region || ':' || n, ',' ORDER BY year, region) FROM (SELECT year, region, count(*) AS n FROM ";
  const fromParts = await scalar(dir, `${grouped} read_parquet('part/**/*.parquet', hive_partitioning = true) GROUP BY ALL)`);
  const fromCsv = await scalar(dir, `${grouped} read_csv('sales.csv') GROUP BY ALL)`);
  assert.equal(fromParts, fromCsv);

  const again = await runCli(['partition', 'sales.csv', 'part', '--by', 'year', '--json'], { cwd: dir });
  assert.equal(again.code, EXIT_CODES.INPUT_ERROR);
  assert.match(errorOf(again).message, /already holds a finished partitioning/);

  const over = await runCli(['partition', 'sales.csv', 'part', '--hash-by', 'id', '--buckets', '4', '--overwrite', '--json'], { cwd: dir });
  assert.equal(over.code, 0, over.stdout);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'part')).filter((f) => !f.startsWith('.')).sort(), ['bucket=0', 'bucket=1', 'bucket=2', 'bucket=3']);
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('bmad-')), [], 'no staging or old directory is left beside it');
  assert.equal(await scalar(dir, "SELECT count(*) FROM read_parquet('part/**/*.parquet')"), 6000);
});

test('partition resumes an interrupted run, and refuses a directory it did not write unless --overwrite', { timeout: 120000 }, async () => {
  const dir = tempDir();
  fs.mkdirSync(path.join(dir, 'in'));
  writeSales(path.join(dir, 'in', 'a.csv'), 1000);
  writeSales(path.join(dir, 'in', 'b.csv'), 2000, 1000);
  assert.equal((await runCli(['partition', 'in', 'part', '--by', 'year', '--json'], { cwd: dir })).code, 0);
  const markers = path.join(dir, 'part', '.bmad-done');
  fs.rmSync(path.join(markers, fs.readdirSync(markers).sort()[1])); // as if the run died before b.csv finished
  const resumed = await runCli(['partition', 'in', 'part', '--by', 'year', '--json'], { cwd: dir });
  assert.equal(resumed.code, 0, resumed.stdout);
  assert.deepEqual([result(resumed).data.written, result(resumed).data.skipped], [1, 1]);
  assert.match(resumed.lines.find((l) => l.type === 'warning').message, /resumed: kept 1 input/);
  assert.equal(await scalar(dir, "SELECT count(*) FROM read_parquet('part/**/*.parquet')"), 3000);

  fs.mkdirSync(path.join(dir, 'mine'));
  fs.writeFileSync(path.join(dir, 'mine', 'notes.txt'), 'keep me');
  const refused = await runCli(['partition', 'in', 'mine', '--by', 'year', '--json'], { cwd: dir });
  assert.equal(refused.code, EXIT_CODES.INPUT_ERROR);
  assert.match(errorOf(refused).hint, /--overwrite/);
  assert.equal(fs.readFileSync(path.join(dir, 'mine', 'notes.txt'), 'utf8'), 'keep me');
});

test('partition needs exactly one layout; --buckets goes with --hash-by', async () => {
  for (const args of [[], ['--by', 'a', '--hash-by', 'b'], ['--by', 'a', '--buckets', '4'], ['--by', 'a-b']]) {
    const r = await runCli(['partition', 'x.csv', 'out', ...args, '--json']);
    assert.equal(r.code, EXIT_CODES.USAGE, `${args.join(' ')}: ${r.stdout}`);
    assert.equal(r.lines.length, 1);
  }
});

test('partition stopped with Ctrl+C after its first input resumes from there', { timeout: 180000 }, async () => {
  const { spawn } = require('node:child_process');
  const { BIN, waitFor } = require('./helpers');
  const dir = tempDir();
  fs.mkdirSync(path.join(dir, 'in'));
  writeSales(path.join(dir, 'in', 'a.csv'), 1000);
  const big = await runCli(['query', "COPY (SELECT i AS id, ['north', 'south', 'east'][i % 3 + 1] AS region, 2020 + i % 4 AS year, i * 1.5 AS amount FROM range(1000, 4001000) t(i)) TO 'in/b.csv'", '--json'], { cwd: dir });
  assert.equal(big.code, 0, big.stdout);
  const child = spawn(process.execPath, [BIN, 'partition', 'in', 'part', '--by', 'year', '--json'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (c) => { stdout += c; });
  const exited = new Promise((resolve) => child.on('close', (code) => resolve(code)));
  const markers = path.join(dir, 'part', '.bmad-done');
  assert.ok(await waitFor(() => fs.existsSync(markers) && fs.readdirSync(markers).length === 1, { timeoutMs: 60000, stepMs: 20 }), 'a.csv finished');
  child.kill('SIGINT');
  const code = await exited;
  assert.equal(code, EXIT_CODES.CANCELLED, stdout);
  assert.equal(fs.readdirSync(markers).length, 1, 'b.csv did not finish');
  assert.deepEqual(fs.readdirSync(path.join(dir, 'part')).filter((f) => f.startsWith('.bmad-staging')), [], 'nothing half-written is left');
  const resumed = await runCli(['partition', 'in', 'part', '--by', 'year', '--json'], { cwd: dir });
  assert.equal(resumed.code, 0, resumed.stdout);
  assert.deepEqual([result(resumed).data.written, result(resumed).data.skipped], [1, 1]);
  assert.equal(await scalar(dir, "SELECT count(*) FROM read_parquet('part/**/*.parquet')"), 4001000);
});
