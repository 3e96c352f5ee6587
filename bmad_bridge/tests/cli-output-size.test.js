'use strict';
/** Issue 10: no output size may crash a renderer (table, CSV, --output json, --json). */
const test = require('node:test');
const assert = require('node:assert/strict');
const { runCli } = require('./helpers');

const ROWS = 125000; // past ~120k rows, Math.max(...widths) overflowed the call stack
const SQL = `SELECT range AS i FROM range(${ROWS})`;

for (const output of ['table', 'csv', 'json']) {
  test(`query --output ${output} prints ${ROWS} rows without crashing`, { timeout: 120000 }, async () => {
    const r = await runCli(['query', SQL, '--max-rows', String(ROWS), '--output', output], { env: { NO_COLOR: '1' }, timeoutMs: 120000 });
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    assert.doesNotMatch(r.stderr, /call stack|INTERNAL/);
    if (output === 'table') {
      const lines = r.stdout.trimEnd().split('\n');
      assert.equal(lines.length, ROWS + 4);
      assert.equal(lines[lines.length - 2], `│ ${ROWS - 1} │`);
    } else if (output === 'csv') {
      const lines = r.stdout.trimEnd().split('\n');
      assert.equal(lines.length, ROWS + 1);
      assert.equal(lines[ROWS], String(ROWS - 1));
    } else {
      const data = JSON.parse(r.stdout);
      assert.equal(data.rows.length, ROWS);
      assert.deepEqual(data.rows[ROWS - 1], [ROWS - 1]);
    }
  });
}

test(`query --json carries ${ROWS} rows in one result line`, { timeout: 120000 }, async () => {
  const r = await runCli(['query', SQL, '--max-rows', String(ROWS), '--json'], { timeoutMs: 120000 });
  assert.equal(r.code, 0, r.stdout.slice(-2000));
  const [result] = r.lines.filter((l) => l.type === 'result');
  assert.equal(result.data.rows.length, ROWS);
});
