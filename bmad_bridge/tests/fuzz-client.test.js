'use strict';
/**
 * The client against what a broken sidecar might print: a real child process (a small Node
 * script standing in for the sidecar, over real pipes) answers each request in the way the
 * request asks (params.mode), mixing in garbage lines, partial lines, huge lines, invalid UTF-8,
 * wrong and unknown ids, malformed errors and notifications of the wrong shape, chosen by a fixed
 * seed. The client must never throw, must settle every request (rejecting with a clear
 * BmadDataError where the answer was garbage), and must go on serving.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { SidecarClient } = require('../lib/client');
const { BmadDataError } = require('../lib/errors');
const { tempDir } = require('./helpers');

const SEED = 20261206;
const REQUESTS = 400;
const MAX_LINE = 1_000_000;

// The stand-in sidecar. argv[1]: the seed for its choice of garbage.
const FAKE_SIDECAR = String.raw`
const readline = require('node:readline');
let state = Number(process.argv[1]) >>> 0;
const rand = () => { state = (state + 0x6D2B79F5) >>> 0; let t = state; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
const pick = (items) => items[Math.floor(rand() * items.length)];
const line = (obj) => JSON.stringify(obj) + '\n';
const GARBAGE = [
  'hello from a stray print\n', Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x0a]), '\x00\x00\x00\n', '[1, 2\n', '\r\n', '\n',
  '{"jsonrpc":"2.0","id":987654321,"result":1}\n', '{"jsonrpc":"2.0","id":"1","result":1}\n', '{"jsonrpc":"2.0","id":{"a":1},"result":1}\n',
  '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}\n', '{"jsonrpc":"2.0","id":null,"error":5}\n', '{"jsonrpc":"1.0","id":1,"result":1}\n',
  '[]\n', '[[]]\n', '[1,{"x":1}]\n', 'null\n', '42\n', '"str"\n', 'true\n', '{}\n', '{"jsonrpc":"2.0"}\n', '{"jsonrpc":"2.0","method":5}\n',
  '{"jsonrpc":"2.0","method":"error","params":{"a":1}}\n', '{"jsonrpc":"2.0","method":"exit","params":{}}\n', '{"jsonrpc":"2.0","method":"protocol-error"}\n',
  '{"jsonrpc":"2.0","method":"$/progress","params":null}\n', '{"jsonrpc":"2.0","method":"$/progress","params":{"token":"bridge-1","value":5}}\n',
  '{"jsonrpc":"2.0","method":"$/progress","params":{"token":{},"value":{}}}\n', '{"jsonrpc":"2.0","method":"config/changed","params":"x"}\n',
  '{"__proto__":{"polluted":1},"jsonrpc":"2.0","method":"$/x"}\n', '{"jsonrpc":"2.0","method":"$/log","params":{"message":"\\ud800"}}\n',
  '['.repeat(100000) + '\n', '['.repeat(20000) + ']'.repeat(20000) + '\n', 'x'.repeat(${MAX_LINE} + 5) + '\n',
];
// One writer, so a line written in pieces is never cut by another: items are data, or {delay} in ms.
const queue = [];
let waiting = false;
const pump = () => {
  while (queue.length && !waiting) {
    const item = queue.shift();
    if (item && item.delay !== undefined) { waiting = true; setTimeout(() => { waiting = false; pump(); }, item.delay); }
    else process.stdout.write(item);
  }
};
const write = (...items) => { queue.push(...items); pump(); };
const ok = (req) => line({ jsonrpc: '2.0', id: req.id, result: { echo: req.params.payload } });
const MODES = {
  ok: (req) => write(ok(req)),
  error: (req) => write(line({ jsonrpc: '2.0', id: req.id, error: { code: -32005, message: 'm', data: { code: 'SQL_ERROR', message: 'no such table', hint: 'fix it', severity: 'error', retryable: false, details: {} } } })),
  'garbage-then-ok': (req) => { for (let i = 1 + Math.floor(rand() * 4); i > 0; i--) write(pick(GARBAGE)); write(ok(req)); },
  split: (req) => {
    const text = ok(req);
    const items = [];
    for (let at = 0, n = 0; at < text.length; at += n) {
      n = 1 + Math.floor(rand() * 20);
      items.push({ delay: Math.floor(rand() * 3) }, text.slice(at, at + n));
    }
    write(...items);
  },
  twice: (req) => { write(ok(req)); write(ok(req)); },
  batch: (req) => write('[' + JSON.stringify(pick([1, null, {}, { jsonrpc: '2.0' }])) + ',' + ok(req).trim() + ']\n'),
  'bad-error': (req) => write(line(pick([
    { jsonrpc: '2.0', id: req.id, error: 'x' }, { jsonrpc: '2.0', id: req.id, error: {} }, { jsonrpc: '2.0', id: req.id, error: null },
    { jsonrpc: '2.0', id: req.id, error: { code: 'a', message: 'm' } }, { jsonrpc: '2.0', id: req.id, result: 1, error: { code: 1, message: 'm' } },
  ]))),
  'weird-error-data': (req) => write(line({ jsonrpc: '2.0', id: req.id, error: { code: -32005, message: 'm', data: pick([5, [], { hint: {}, severity: 7, details: [1], message: 3 }]) } })),
  'huge-answer': (req) => write('{"jsonrpc":"2.0","id":' + req.id + ',"result":"' + 'y'.repeat(${MAX_LINE} * 2) + '"}\n'),
  silent: () => {},
  progress: (req) => {
    const token = req.params.progress_token;
    write(line({ jsonrpc: '2.0', method: '$/progress', params: { token, value: 7 } }));
    write(line({ jsonrpc: '2.0', method: '$/progress', params: { token } }));
    write(line({ jsonrpc: '2.0', method: '$/progress', params: { token, value: { phase: 'running', percent: 50 } } }));
    write(ok(req));
  },
  'invalid-utf8': (req) => write(Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":' + req.id + ',"result":{"echo":"'), Buffer.from([0xff, 0xc0, 0xed, 0xa0, 0x80]), Buffer.from('"}}\n')])),
  die: () => { write('{"jsonrpc":"2.0","id":'); setTimeout(() => process.exit(3), 50); },
};
readline.createInterface({ input: process.stdin }).on('line', (text) => {
  let req;
  try { req = JSON.parse(text); } catch { return; }
  if (req.id === undefined) return; // notifications: $/cancelRequest, exit
  if (req.method === 'shutdown') { write(line({ jsonrpc: '2.0', id: req.id, result: null })); return; }
  (MODES[req.params && req.params.mode] || MODES.ok)(req);
});
process.stdin.on('end', () => process.exit(0));
`;

const EXPECT = {
  ok: 'resolves',
  error: 'SQL_ERROR',
  'garbage-then-ok': 'resolves',
  split: 'resolves',
  twice: 'resolves',
  batch: 'resolves',
  'bad-error': 'PROTOCOL_ERROR',
  'weird-error-data': 'SQL_ERROR',
  'huge-answer': 'PROTOCOL_ERROR',
  silent: 'TIMEOUT',
  progress: 'resolves',
  'invalid-utf8': 'resolves',
};

function mulberry32(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6D2B79F5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fakeClient(seed) {
  return new SidecarClient({
    cwd: tempDir(),
    python: process.execPath,
    args: ['-e', FAKE_SIDECAR, String(seed)],
    initialize: false,
    maxLineChars: MAX_LINE,
    cancelGraceMs: 100,
    restart: { maxRestarts: 1, baseDelayMs: 10 },
  });
}

function assertClear(err, mode) {
  assert.ok(err instanceof BmadDataError, `${mode}: not a BmadDataError: ${err && err.stack}`);
  assert.equal(typeof err.code, 'string');
  assert.ok(typeof err.message === 'string' && err.message.length > 0, `${mode}: empty message`);
  assert.equal(typeof err.hint, 'string');
  assert.ok(err.details && typeof err.details === 'object' && !Array.isArray(err.details));
}

test('the client survives a sidecar that prints garbage, settles every request, and keeps serving', { timeout: 120000 }, async (t) => {
  const client = fakeClient(SEED);
  t.after(() => client.close({ timeoutMs: 1000 }));
  const protocolErrors = [];
  const errors = [];
  const exits = [];
  const progress = [];
  client.on('protocol-error', (err) => protocolErrors.push(err));
  client.on('error', (err) => errors.push(err)); // must never fire: protocol-error has a listener
  client.on('exit', (info) => exits.push(info));
  await client.start();

  const rand = mulberry32(SEED);
  const modes = Object.keys(EXPECT);
  const counts = Object.fromEntries(modes.map((m) => [m, 0]));
  for (let sent = 0; sent < REQUESTS;) {
    const wave = [];
    for (let i = 0; i < 20 && sent < REQUESTS; i++, sent++) {
      const mode = modes[Math.floor(rand() * modes.length)];
      counts[mode] += 1;
      const payload = `p${sent}`;
      const options = mode === 'silent' ? { timeoutMs: 50 } : mode === 'progress' ? { onProgress: (value) => progress.push(value) } : {};
      wave.push(client.request('fuzz', { mode, payload }, options).then(
        (result) => ({ mode, payload, result }),
        (error) => ({ mode, payload, error }),
      ));
    }
    for (const outcome of await Promise.all(wave)) {
      const expected = EXPECT[outcome.mode];
      if (expected === 'resolves') {
        assert.ok(!outcome.error, `${outcome.mode} rejected: ${outcome.error && outcome.error.message}`);
        const echo = outcome.mode === 'invalid-utf8' ? '\ufffd' : outcome.payload;
        assert.ok(outcome.result.echo.startsWith(echo), `${outcome.mode}: ${JSON.stringify(outcome.result)}`);
      } else {
        assert.ok(outcome.error, `${outcome.mode} settled without an error: ${String(JSON.stringify(outcome)).slice(0, 300)}`);
        assertClear(outcome.error, outcome.mode);
        assert.equal(outcome.error.code, expected, `${outcome.mode}: ${outcome.error.message}`);
      }
    }
  }
  assert.ok(Object.values(counts).every((n) => n > 5), JSON.stringify(counts));
  assert.deepEqual(errors, []);
  assert.deepEqual(exits, [], 'a notification named "exit" must not pass for the process exiting');
  assert.ok(protocolErrors.length > counts['garbage-then-ok'], `${protocolErrors.length} protocol errors`);
  for (const err of protocolErrors) assertClear(err, 'protocol-error');
  assert.ok(progress.length > 0 && progress.every((v) => v && typeof v === 'object' && v.phase === 'running'));
  assert.ok(protocolErrors.some((e) => /more than the client's limit/.test(e.message)));

  // still serving, then a sidecar dying mid-line rejects its request with a clear error
  assert.deepEqual(await client.request('fuzz', { mode: 'ok', payload: 'last' }), { echo: 'last' });
  const death = await client.request('fuzz', { mode: 'die' }).then(() => null, (err) => err);
  assertClear(death, 'die');
  assert.equal(death.code, 'SIDECAR_EXITED');
  assert.equal(exits.length, 1);
  assert.equal(exits[0].exit_code, 3);
});

test('a line longer than the limit is dropped without being held, and the next line is read', () => {
  const { LineSplitter } = require('../lib/lines');
  const lines = [];
  const over = [];
  const splitter = new LineSplitter((line, n) => lines.push([n, line]), {
    maxLineChars: 10,
    onOverflow: (prefix, length, n) => over.push([n, prefix, length]),
  });
  splitter.push('short\n0123456');
  assert.equal(splitter.buffer, '0123456');
  splitter.push('789abcdef');
  assert.equal(splitter.buffer, '', 'the over-long line is not kept');
  splitter.push('x'.repeat(1000));
  splitter.push('tail\nnext\r\nlast');
  splitter.end();
  assert.deepEqual(lines, [[1, 'short'], [3, 'next'], [4, 'last']]);
  assert.deepEqual(over, [[2, ('0123456789abcdef' + 'x'.repeat(1000)).slice(0, 300), 1020]]);
});

test('a throwing onProgress fails its own request, and params that are not JSON are refused before sending', { timeout: 60000 }, async (t) => {
  const client = fakeClient(SEED);
  t.after(() => client.close({ timeoutMs: 1000 }));
  client.on('protocol-error', () => {});
  await client.start();
  const thrown = new Error('renderer bug');
  const failed = await client.request('fuzz', { mode: 'progress', payload: 'p' }, { onProgress: () => { throw thrown; } })
    .then(() => null, (err) => err);
  assert.equal(failed, thrown);
  const refused = await client.request('fuzz', { mode: 'ok', payload: 10n }).then(() => null, (err) => err);
  assertClear(refused, 'bigint');
  assert.equal(refused.code, 'INVALID_PARAMS');
  assert.equal(client._pending.size, 0);
  assert.deepEqual(await client.request('fuzz', { mode: 'ok', payload: 'after' }), { echo: 'after' });
});
