'use strict';
/** Issue 10: what `--help` says is true; each claim a help text makes is run here. */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { EXIT_CODES } = require('../lib/errors');
const { runCli, tempDir } = require('./helpers');

const result = (r) => r.lines.find((l) => l.type === 'result');

test('query --database: the default is a private file per command, not in-memory; a named file keeps tables', async () => {
  const help = await runCli(['query', '--help']);
  assert.doesNotMatch(help.stdout, /in-memory/i);
  assert.match(help.stdout.replace(/\s+/g, ' '), /deleted when the command ends: tables do not outlive one command/);
  const dir = tempDir();
  const env = { BMAD_DATA_STATE_DIR: path.join(dir, 'state') };
  const made = await runCli(['query', 'CREATE TABLE t AS SELECT 1 AS x', '--json'], { cwd: dir, env });
  assert.equal(made.code, 0, made.stdout);
  const gone = await runCli(['query', 'SELECT * FROM t', '--json'], { cwd: dir, env });
  assert.equal(gone.code, EXIT_CODES.SQL_ERROR, 'the table did not outlive its command');
  assert.deepEqual(fs.readdirSync(env.BMAD_DATA_STATE_DIR).filter((f) => f.startsWith('default-')), [],
    'the private database file is deleted when the command ends');
  await runCli(['query', 'CREATE TABLE t AS SELECT 1 AS x', '--database', 'keep.duckdb', '--json'], { cwd: dir, env });
  const kept = await runCli(['query', 'SELECT x FROM t', '--database', 'keep.duckdb', '--json'], { cwd: dir, env });
  assert.deepEqual(result(kept).data.rows, [[1]]);
});

test('cleanup keeps a young named job\'s parts; cleanup --force removes them, as its help says', { timeout: 120000 }, async () => {
  const help = await runCli(['cleanup', '--help']);
  assert.match(help.stdout.replace(/\s+/g, ' '), /--force.*kept parts of every named job \(--job-id\) not running now/);
  const dir = tempDir();
  // a state directory of its own: --force must not remove the jobs of tests running beside it
  const env = { BMAD_DATA_STATE_DIR: path.join(dir, 'state') };
  const sql = 'SELECT i % 7 AS k, count(*) AS n FROM range(2000000000) t(i) GROUP BY k';
  const failed = await runCli(['query', sql, '--parts', '2', '--job-id', 'kept-job', '--save', 'out.parquet', '--timeout', '500', '--json'], { cwd: dir, env });
  assert.equal(failed.code, EXIT_CODES.TIMEOUT, failed.stdout);
  const jobDir = path.join(env.BMAD_DATA_STATE_DIR, 'jobs', 'kept-job');
  assert.ok(fs.existsSync(jobDir), 'the failed named job kept its directory to resume');
  const gentle = await runCli(['cleanup', '--json'], { cwd: dir, env });
  assert.equal(gentle.code, 0, gentle.stdout);
  assert.ok(fs.existsSync(jobDir), 'cleanup without --force keeps a job touched lately');
  const forced = await runCli(['cleanup', '--force', '--json'], { cwd: dir, env });
  assert.equal(forced.code, 0, forced.stdout);
  assert.equal(fs.existsSync(jobDir), false);
  assert.ok(result(forced).data.files_removed >= 1);
});
