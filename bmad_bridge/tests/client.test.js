'use strict';
/** SidecarClient against the real sidecar: requests, errors, progress, cancel, timeouts. */
const test = require('node:test');
const assert = require('node:assert/strict');
const { BmadDataError } = require('../lib/errors');
const { startClient, busySql } = require('./helpers');

test('client', async (t) => {
  const client = await startClient();
  t.after(() => client.close());

  await t.test('initialize reports the server, DuckDB, resources, settings and methods', () => {
    const init = client.initializeResult;
    assert.equal(init.server.name, 'bmad-data-sidecar');
    assert.match(init.duckdb_version, /^\d+\.\d+/);
    assert.ok(init.resources.total_memory_bytes > 0);
    assert.ok(init.settings.memory_budget_bytes > 0);
    for (const m of ['query.run', 'dataset.analyze', 'system.resources', 'config.get', 'cleanup']) {
      assert.ok(init.methods.includes(m), `methods lists ${m}`);
    }
  });

  await t.test('query.run returns typed columns and rows', async () => {
    const r = await client.request('query.run', { sql: "SELECT 42 AS answer, 'héllo' AS s, NULL AS n" });
    assert.deepEqual(r.columns.map((c) => c.name), ['answer', 's', 'n']);
    assert.deepEqual(r.rows, [[42, 'héllo', null]]);
    assert.equal(r.row_count, 1);
    assert.equal(r.truncated, false);
    assert.equal(typeof r.stats.elapsed_ms, 'number');
  });

  await t.test('a request longer than the sidecar reads is refused before it is sent, and the client goes on', async () => {
    const limit = client.initializeResult.max_request_bytes;
    assert.equal(limit, 16 * 1024 * 1024);
    const sql = `SELECT '${'é'.repeat(Math.ceil(limit / 2))}' AS s`; // fewer characters than the limit, more bytes
    await assert.rejects(client.request('query.run', { sql }, { timeoutMs: 20000 }), (err) => {
      assert.equal(err.code, 'INVALID_PARAMS');
      assert.match(err.message, /more than the sidecar's limit of 16777216 bytes per request; it was not sent/);
      assert.match(err.hint, /in a file/);
      return true;
    });
    const r = await client.request('query.run', { sql: 'SELECT 1 AS one' });
    assert.deepEqual(r.rows, [[1]]);
  });

  await t.test('a SQL error rejects with a BmadDataError carrying code, hint and rpcCode', async () => {
    await assert.rejects(client.request('query.run', { sql: 'SELEC 1' }), (err) => {
      assert.ok(err instanceof BmadDataError);
      assert.equal(err.code, 'SQL_ERROR');
      assert.equal(err.rpcCode, -32005);
      assert.ok(err.hint.length > 0);
      assert.equal(err.retryable, false);
      return true;
    });
  });

  await t.test('an unknown method is METHOD_NOT_FOUND, and the next request is served', async () => {
    await assert.rejects(client.request('query.runn', {}), { code: 'METHOD_NOT_FOUND', rpcCode: -32601 });
    assert.equal((await client.request('query.run', { sql: 'SELECT 1 AS x' })).rows[0][0], 1);
  });

  await t.test('a cheap request is answered while a long query runs', async () => {
    const controller = new AbortController();
    const long = client.request('query.run', { sql: busySql(3e10) }, { signal: controller.signal });
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    const res = await client.request('system.resources');
    const ms = Date.now() - started;
    assert.ok(res.total_memory_bytes > 0);
    assert.ok(ms < 1000, `system.resources took ${ms} ms behind a long query`);
    controller.abort();
    await assert.rejects(long, { code: 'CANCELLED' });
  });

  await t.test('progress notifications reach onProgress with percent and memory', async () => {
    const seen = [];
    await client.request('query.run', { sql: busySql(7e8) }, { onProgress: (v) => seen.push(v) });
    assert.ok(seen.length >= 2, `got ${seen.length} progress notifications`);
    for (const v of seen) {
      assert.ok(v.percent === null || (v.percent >= 0 && v.percent <= 100), `percent ${v.percent}`);
      assert.equal(typeof v.elapsed_ms, 'number');
      assert.ok(v.rss_bytes > 0);
    }
  });

  await t.test('AbortSignal sends $/cancelRequest and the sidecar answers CANCELLED within a second', async () => {
    const controller = new AbortController();
    const pending = client.request('query.run', { sql: busySql(3e10) }, { signal: controller.signal });
    await new Promise((r) => setTimeout(r, 500));
    const started = Date.now();
    controller.abort();
    await assert.rejects(pending, (err) => {
      assert.equal(err.code, 'CANCELLED');
      assert.equal(err.rpcCode, -32800, 'the answer came from the sidecar, not a local give-up');
      return true;
    });
    const ms = Date.now() - started;
    assert.ok(ms < 1000, `cancel took ${ms} ms`);
    assert.equal((await client.request('query.run', { sql: 'SELECT 2 AS x' })).rows[0][0], 2);
  });

  await t.test('an already-aborted signal never reaches the sidecar', async () => {
    await assert.rejects(client.request('query.run', { sql: 'SELECT 1' }, { signal: AbortSignal.abort() }), { code: 'CANCELLED', rpcCode: null });
  });

  await t.test('timeoutMs cancels the request and rejects with a retryable TIMEOUT', async () => {
    const started = Date.now();
    await assert.rejects(client.request('query.run', { sql: busySql(3e10) }, { timeoutMs: 400 }), (err) => {
      assert.equal(err.code, 'TIMEOUT');
      assert.equal(err.retryable, true);
      assert.equal(err.details.source, 'client');
      assert.equal(err.details.acknowledged, true);
      return true;
    });
    assert.ok(Date.now() - started < 2000);
  });

  await t.test('the sidecar\'s own timeout_ms is a TIMEOUT from the sidecar', async () => {
    await assert.rejects(client.request('query.run', { sql: busySql(3e10), timeout_ms: 300 }), { code: 'TIMEOUT', rpcCode: -32008 });
  });
});
