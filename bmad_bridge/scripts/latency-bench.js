#!/usr/bin/env node
'use strict';
/**
 * The hop's latency, side by side in one run (docs/performance/latency.md quotes its output):
 *
 *   node bmad_bridge/scripts/latency-bench.js [--calls 1000] [--loop-seconds 8] [--skip-loop] [--skip-python] [--json]
 *
 * 1. Round trips through the Node bridge (`SidecarClient.request`), in interleaved rounds: the echo
 *    floor (`python -m sidecar.bench.echo`, the sidecar's own framing answering at once), `config.get`
 *    (the dispatch floor), `system.resources`, `query.run SELECT 42`, and the in-process anchor:
 *    `SELECT 42` through `@duckdb/node-api` in this process. p50/p99 and the ratios to both.
 * 2. The same methods from a Python client (`python -m sidecar.bench.roundtrip --latency-only --json`).
 * 3. Event-loop delay (perf_hooks.monitorEventLoopDelay) while a long query runs through the bridge
 *    with progress, against the same query run in process by @duckdb/node-api.
 * Figures are printed, never asserted: the machine is shared, so ratios against the anchors taken in
 * the same run are what compare, with the load average printed beside them.
 */
const os = require('node:os');
const { spawn } = require('node:child_process');
const { monitorEventLoopDelay } = require('node:perf_hooks');
const { SidecarClient } = require('../lib/client');

const ROUNDS = 10;
const WARMUP = 50;
const BUSY_SQL = (rows) => `SELECT count(*) AS n FROM range(${rows}) t(i) WHERE hash(i) % 7 = 1`;

function parseArgs(argv) {
  const options = { calls: 1000, loopSeconds: 8, skipLoop: false, skipPython: false, json: false };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === '--calls') options.calls = Number(argv[++i]);
    else if (arg === '--loop-seconds') options.loopSeconds = Number(argv[++i]);
    else if (arg === '--skip-loop') options.skipLoop = true;
    else if (arg === '--skip-python') options.skipPython = true;
    else if (arg === '--json') options.json = true;
    else throw new Error(`unknown option ${arg}; options: --calls N, --loop-seconds S, --skip-loop, --skip-python, --json`);
  }
  if (!(options.calls >= ROUNDS)) throw new Error(`--calls must be a number >= ${ROUNDS}`);
  return options;
}

/** p50, p99, max (nearest rank) of samples in ms. */
function summary(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.round(q * (sorted.length - 1)))];
  return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1], calls: sorted.length };
}

async function anchorConnection() {
  let api;
  try {
    api = require('@duckdb/node-api');
  } catch (err) {
    throw new Error(`@duckdb/node-api is missing (${err.message}); run \`npm ci\` in bmad_bridge (it is a devDependency)`);
  }
  const instance = await api.DuckDBInstance.create(':memory:', { threads: String(os.cpus().length) });
  return instance.connect();
}

/** Round trips in ms of each target, `calls` each, taken in interleaved rounds after a warm-up. */
async function roundTrips(targets, calls) {
  for (const run of Object.values(targets)) for (let i = 0; i < Math.min(WARMUP, calls); i += 1) await run();
  const samples = Object.fromEntries(Object.keys(targets).map((name) => [name, []]));
  const perRound = Math.floor(calls / ROUNDS);
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const [name, run] of Object.entries(targets)) {
      for (let i = 0; i < perRound; i += 1) {
        const started = process.hrtime.bigint();
        await run();
        samples[name].push(Number(process.hrtime.bigint() - started) / 1e6);
      }
    }
  }
  return Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, summary(values)]));
}

function pythonFigures(python, env, calls) {
  return new Promise((resolve, reject) => {
    const child = spawn(python, ['-m', 'sidecar.bench.roundtrip', '--latency-only', '--json', '--calls', String(calls)], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk) => { out += chunk; });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`sidecar.bench.roundtrip exited with ${code}`))));
  });
}

/** The event loop's delay (ms) while `work` runs; `work` resolves when the query is done. */
async function loopDelay(work) {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  const started = Date.now();
  const extra = await work();
  const elapsed = Date.now() - started;
  histogram.disable();
  return {
    seconds: elapsed / 1000,
    p50: histogram.percentile(50) / 1e6,
    p99: histogram.percentile(99) / 1e6,
    max: histogram.max / 1e6,
    ...extra,
  };
}

/**
 * What the client runs on the event loop for the sidecar's output: the time spent handling each
 * stdout line (parse, match, listeners) and stderr chunk, counted by wrapping the client's handlers.
 */
function onLoopTime(client) {
  const handle = client._onLine;
  let lines = 0;
  let ns = 0n;
  let stderrChunks = 0;
  client._onLine = function timed(line, n) {
    const started = process.hrtime.bigint();
    try {
      return handle.call(this, line, n);
    } finally {
      ns += process.hrtime.bigint() - started;
      lines += 1;
    }
  };
  const countStderr = () => { stderrChunks += 1; };
  client.on('stderr', countStderr);
  return {
    reset() { lines = 0; ns = 0n; stderrChunks = 0; },
    read: () => ({ lines, line_ms: Number(ns) / 1e6, stderr_chunks: stderrChunks }),
    restore() { client._onLine = handle; client.removeListener('stderr', countStderr); },
  };
}

/** Rows of BUSY_SQL that take about `seconds` for `run`, from a probe of 1e8 rows. */
async function calibrate(run, seconds) {
  const probeRows = 1e8;
  await run(probeRows);
  const started = Date.now();
  await run(probeRows);
  return Math.round((probeRows * seconds * 1000) / Math.max(Date.now() - started, 1));
}

async function eventLoop(client, anchor, seconds) {
  const viaBridge = async (rows, onProgress) => client.request('query.run', { sql: BUSY_SQL(rows) }, onProgress ? { onProgress } : {});
  const inProcess = async (rows) => (await anchor.runAndReadAll(BUSY_SQL(rows))).getRows();
  const bridgeRows = await calibrate(viaBridge, seconds);
  await inProcess(1e6); // the anchor runs the same query over the same rows: the same work on both sides
  const anchorRows = bridgeRows;
  let progress = 0;
  const onLoop = onLoopTime(client);
  const bridge = await loopDelay(async () => {
    onLoop.reset();
    await viaBridge(bridgeRows, () => { progress += 1; });
    return { rows: bridgeRows, progress, ...onLoop.read() };
  });
  onLoop.restore();
  const inProc = await loopDelay(async () => { await inProcess(anchorRows); return { rows: anchorRows }; });
  return { bridge, anchor: inProc };
}

function fmt(value) {
  return value.toFixed(3).padStart(8);
}

function report(figures) {
  const { bridge, python, loop, load } = figures;
  const lines = [];
  lines.push(`machine: ${os.cpus().length} CPUs, load ${load.map((x) => x.toFixed(2)).join(' ')}, Node ${process.version}, @duckdb/node-api ${figures.anchorVersion}`);
  lines.push(`through the Node bridge (SidecarClient.request), ${bridge.echo.calls} calls each in ${ROUNDS} interleaved rounds (ms):`);
  const echo = bridge.echo;
  const anchor = bridge['anchor SELECT 42'];
  for (const [name, f] of Object.entries(bridge)) {
    lines.push(`  ${name.padEnd(22)} p50 ${fmt(f.p50)}  p99 ${fmt(f.p99)}  max ${fmt(f.max)}   x echo p50 ${(f.p50 / echo.p50).toFixed(2).padStart(6)} p99 ${(f.p99 / echo.p99).toFixed(2).padStart(6)}   x anchor p50 ${(f.p50 / anchor.p50).toFixed(2).padStart(6)} p99 ${(f.p99 / anchor.p99).toFixed(2).padStart(6)}`);
  }
  if (python) {
    lines.push(`from a Python client (sidecar.bench.roundtrip, same run; load ${python.load.map((x) => x.toFixed(2)).join(' ')}) (ms):`);
    const floor = python.latency_ms.echo;
    for (const [name, f] of Object.entries(python.latency_ms)) {
      lines.push(`  ${name.padEnd(22)} p50 ${fmt(f.p50)}  p99 ${fmt(f.p99)}  max ${fmt(f.max)}   x echo p50 ${(f.p50 / floor.p50).toFixed(2).padStart(6)} p99 ${(f.p99 / floor.p99).toFixed(2).padStart(6)}`);
    }
  }
  if (loop) {
    lines.push('event-loop delay while a long query runs (monitorEventLoopDelay, 1 ms resolution; ms):');
    for (const [name, f] of Object.entries(loop)) {
      const what = name === 'bridge'
        ? `through the bridge, ${f.progress} progress notifications; on the loop: ${f.lines} lines in ${f.line_ms.toFixed(3)} ms, ${f.stderr_chunks} stderr chunks`
        : 'in process, @duckdb/node-api';
      lines.push(`  ${name.padEnd(7)} ${f.seconds.toFixed(1)} s query (${f.rows.toExponential(2)} rows, ${what}): p50 ${f.p50.toFixed(2)}  p99 ${f.p99.toFixed(2)}  max ${f.max.toFixed(2)}`);
    }
    lines.push(`  p99 bridge / anchor: ${(loop.bridge.p99 / loop.anchor.p99).toFixed(2)}`);
  }
  return lines.join('\n');
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const client = new SidecarClient({ initialize: { client: { name: 'latency-bench' } }, env: { ...process.env, BMAD_DATA_LOG_LEVEL: 'warning' } });
  const echoClient = new SidecarClient({ args: ['-P', '-m', 'sidecar.bench.echo'], initialize: false });
  const anchor = await anchorConnection();
  try {
    await client.start();
    await echoClient.start();
    const bridge = await roundTrips({
      echo: () => echoClient.request('echo', {}),
      'config.get': () => client.request('config.get', {}),
      'system.resources': () => client.request('system.resources', {}),
      'query.run SELECT 42': () => client.request('query.run', { sql: 'SELECT 42' }),
      'anchor SELECT 42': async () => (await anchor.runAndReadAll('SELECT 42')).getRows(),
    }, options.calls);
    const python = options.skipPython ? null : await pythonFigures(client.python, client.env, options.calls);
    const loop = options.skipLoop ? null : await eventLoop(client, anchor, options.loopSeconds);
    const figures = { bridge, python, loop, load: os.loadavg(), anchorVersion: require('@duckdb/node-api/package.json').version };
    process.stdout.write(options.json ? `${JSON.stringify(figures)}\n` : `${report(figures)}\n`);
  } finally {
    anchor.closeSync();
    await Promise.all([client.close(), echoClient.close()]);
  }
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`latency-bench: ${err.message}\n`);
    process.exitCode = 1;
  });
}

module.exports = { summary, parseArgs };
