'use strict';
/** Issue 10: --save, --format, --overwrite and --output are coherent, or refused naming both flags. */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { EXIT_CODES } = require('../lib/errors');
const { runCli, tempDir } = require('./helpers');

function usageError(r) {
  assert.equal(r.code, EXIT_CODES.USAGE, r.stdout + r.stderr);
  const [line] = r.lines;
  assert.equal(line.error.code, 'USAGE');
  return line.error;
}

test('--format or --overwrite without --save is refused, not silently ignored', async () => {
  for (const flags of [['--format', 'parquet'], ['--overwrite']]) {
    const err = usageError(await runCli(['query', 'SELECT 1', ...flags, '--json']));
    assert.match(err.message, new RegExp(`${flags[0]} applies to the file of --save`));
    assert.match(err.hint, /--save <file>/);
  }
});

test('--save x.csv --format parquet is a contradiction naming both flags; nothing is written', async () => {
  const dir = tempDir();
  const err = usageError(await runCli(['query', 'SELECT 1', '--save', 'x.csv', '--format', 'parquet', '--json'], { cwd: dir }));
  assert.match(err.message, /--save x\.csv names a csv file but --format says parquet/);
  assert.match(err.hint, /Drop --format/);
  assert.deepEqual(fs.readdirSync(dir), []);
});

test('--save with --output is refused: the rows go to the file, none are printed', async () => {
  const err = usageError(await runCli(['query', 'SELECT 1', '--save', 'x.parquet', '--output', 'csv', '--json']));
  assert.match(err.message, /--output .* --save/);
});

test('the extension decides the format; --format names it for a file without one', async () => {
  const dir = tempDir();
  const csv = await runCli(['query', 'SELECT 1 AS a, 2 AS b', '--save', 'x.csv', '--json'], { cwd: dir });
  assert.equal(csv.code, 0, csv.stdout);
  assert.equal(fs.readFileSync(path.join(dir, 'x.csv'), 'utf8').split('\n')[0], 'a,b');
  const same = await runCli(['query', 'SELECT 1 AS a', '--save', 'y.csv', '--format', 'csv', '--json'], { cwd: dir });
  assert.equal(same.code, 0, same.stdout);
  const bare = await runCli(['query', 'SELECT 1 AS a', '--save', 'z.out', '--format', 'json', '--json'], { cwd: dir });
  assert.equal(bare.code, 0, bare.stdout);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'z.out'), 'utf8').trim()), { a: 1 });
  const unknown = usageError(await runCli(['query', 'SELECT 1', '--save', 'w.out', '--json'], { cwd: dir }));
  assert.match(unknown.hint, /--format parquet\|csv\|json/);
});

test('--save out/sub/x.parquet creates the missing directories; a failed query removes them again', async () => {
  const dir = tempDir();
  const r = await runCli(['query', 'SELECT * FROM range(10) t(i)', '--save', 'out/sub/x.parquet', '--json'], { cwd: dir });
  assert.equal(r.code, 0, r.stdout);
  const back = await runCli(['query', "SELECT count(*) FROM 'out/sub/x.parquet'", '--json'], { cwd: dir });
  assert.equal(back.lines.find((l) => l.type === 'result').data.rows[0][0], 10);
  const failed = await runCli(['query', 'SELEC 1', '--save', 'new/deeper/x.parquet', '--json'], { cwd: dir });
  assert.equal(failed.code, EXIT_CODES.SQL_ERROR);
  assert.equal(fs.existsSync(path.join(dir, 'new')), false, 'the directories made for a failed query are gone');
});
