'use strict';
/** Protocol garbage in both directions, with the real sidecar on the other end. */
const test = require('node:test');
const assert = require('node:assert/strict');
const { SidecarClient } = require('../lib/client');
const { startClient, tempDir } = require('./helpers');

// The real sidecar, preceded by a stray print on its stdout (as a careless import would do).
const NOISY_SIDECAR = [
  '-P', '-c',
  "import runpy, sys; print('hello from a stray print', flush=True); print('[1, 2', flush=True); "
  + "print('{\"jsonrpc\": \"2.0\", \"id\": 999999, \"result\": 1}', flush=True); "
  + "sys.argv = ['sidecar']; runpy.run_module('sidecar', run_name='__main__', alter_sys=True)",
];

test('non-JSON lines on the sidecar\'s stdout are reported as PROTOCOL_ERROR events, and work goes on', async (t) => {
  const client = new SidecarClient({ cwd: tempDir(), args: NOISY_SIDECAR });
  t.after(() => client.close());
  const errors = [];
  client.on('protocol-error', (err) => errors.push(err));
  await client.start();
  const r = await client.request('query.run', { sql: 'SELECT 5 AS x' });
  assert.equal(r.rows[0][0], 5);
  assert.equal(errors.length, 3, errors.map((e) => e.message).join('\n'));
  assert.ok(errors.every((e) => e.code === 'PROTOCOL_ERROR'));
  assert.match(errors[0].message, /not JSON/);
  assert.equal(errors[0].details.line, 'hello from a stray print');
  assert.equal(errors[0].details.line_number, 1);
  assert.match(errors[2].message, /unknown request id 999999/);
  assert.equal(client.protocolErrors, 3);
});

test('with no protocol-error listener the fault surfaces as an \'error\' event, never swallowed', async (t) => {
  const client = new SidecarClient({ cwd: tempDir(), args: NOISY_SIDECAR });
  t.after(() => client.close());
  const errors = [];
  client.on('error', (err) => errors.push(err));
  await client.start();
  assert.equal(errors.length, 3);
  assert.ok(errors.every((e) => e.code === 'PROTOCOL_ERROR'));
});

test('garbage the bridge sends gets the sidecar\'s error, and the next request is served', async (t) => {
  const client = await startClient();
  t.after(() => client.close());
  const received = [];
  client.on('protocol-error', (err) => received.push(err));

  client.writeRaw('this is not json');
  client.writeRaw('{"jsonrpc": "2.0", "method": 42, "id": "x"}');
  client.writeRaw('[]');
  const r = await client.request('query.run', { sql: 'SELECT 9 AS x' });
  assert.equal(r.rows[0][0], 9);

  const codes = received.map((e) => e.code);
  assert.ok(codes.includes('PARSE_ERROR'), `got ${codes}`);
  assert.ok(codes.includes('INVALID_REQUEST'), `got ${codes}`);
  const parse = received.find((e) => e.code === 'PARSE_ERROR');
  assert.equal(parse.rpcCode, -32700);
  assert.equal(parse.details.direction, 'bridge->sidecar');
});

test('invalid params are INVALID_PARAMS with a hint, and do not disturb the client', async (t) => {
  const client = await startClient();
  t.after(() => client.close());
  await assert.rejects(client.request('query.run', { sql: 42 }), (err) => {
    assert.equal(err.code, 'INVALID_PARAMS');
    assert.equal(err.rpcCode, -32602);
    assert.ok(err.hint);
    return true;
  });
  assert.equal((await client.request('query.run', { sql: 'SELECT 1 AS x' })).row_count, 1);
});
