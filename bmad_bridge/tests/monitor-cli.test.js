'use strict';
/**
 * `bmad-data monitor` as a user runs it: a real process, a real sidecar, a real pseudo-terminal
 * (util-linux `script`) for the in-place view; it stops on --once, on Ctrl+C (SIGINT) and when its
 * sidecar dies, each with the exit code and the last line that say so.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { spawn } = require('node:child_process');
const { EXIT_CODES } = require('../lib/errors');
const { width } = require('../lib/cli/format');
const { BIN, runCli, runProcess, tempDir, waitFor } = require('./helpers');

/** Start `bmad-data <args> --json`; collects its JSON lines as they come. */
function startCli(args) {
  const child = spawn(process.execPath, [BIN, ...args, '--json'], { cwd: tempDir(), stdio: ['ignore', 'pipe', 'pipe'] });
  child.lines = [];
  let rest = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop();
    for (const p of parts) if (p) child.lines.push(JSON.parse(p));
  });
  child.done = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  return child;
}

/** The pids of a process's children (Linux /proc). */
function childrenOf(pid) {
  const text = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  return text ? text.split(/\s+/).map(Number) : [];
}

test('--once --json: one sample (machine, workers, jobs) and a result', async () => {
  const r = await runCli(['monitor', '--once', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.lines.map((l) => l.type), ['sample', 'result']);
  const [sample] = r.lines;
  assert.ok(sample.machine.effective_memory_bytes > 0 && sample.machine.machine_budget_bytes > 0);
  assert.deepEqual(sample.workers, []);
  assert.equal(r.lines[1].data.stopped, 'once');
});

test('on a real terminal the view redraws in place, fits the width, and gives the cursor back', async () => {
  const cmd = `stty cols 72 rows 20; exec '${process.execPath}' '${BIN}' monitor --count 3 --interval 0.2`;
  const r = await runProcess('script', ['-qfec', cmd, '/dev/null'], { cwd: tempDir(), env: { ...process.env, NO_COLOR: '1' } });
  assert.equal(r.code, 0, r.stdout);
  const out = r.stdout;
  assert.ok(out.startsWith('\x1b[?25l'), JSON.stringify(out.slice(0, 80)));
  const redraws = out.match(/\x1b\[(\d+)F/g) || [];
  assert.ok(redraws.length >= 3, `moved back up ${redraws.length} times`);
  assert.ok(!out.includes('\x1b[2J'), 'no full-screen clear (flicker) without a resize');
  const shown = out.indexOf('\x1b[?25h');
  assert.ok(shown > 0 && out.slice(shown).includes('Monitoring stopped (count reached, 3 samples)'));
  for (const line of out.slice(0, shown).replace(/\x1b\[(?:\?25l|\d+F|K|J)/g, '').split('\r\n')) {
    assert.ok(width(line) <= 72, `wider than 72 columns: ${line}`);
  }
  assert.match(out, /Machine +[█░│]+ [\d.]+ [KMGT]?B of [\d.]+ [KMGT]?B used/); // MB on a quiet machine
});

test('Ctrl+C (SIGINT) stops the live stream cleanly: exit 0, last line says interrupted', { timeout: 60000 }, async () => {
  const child = startCli(['monitor', '--interval', '0.2']);
  assert.ok(await waitFor(() => child.lines.filter((l) => l.type === 'sample').length >= 2, { timeoutMs: 30000 }));
  child.kill('SIGINT');
  const { code } = await child.done;
  assert.equal(code, 0);
  assert.deepEqual(child.lines.at(-1).data.stopped, 'interrupted');
});

test('the sidecar dying ends the monitor with SIDECAR_EXITED (exit 12), not a hang', { timeout: 60000 }, async () => {
  const child = startCli(['monitor', '--interval', '0.2']);
  assert.ok(await waitFor(() => child.lines.some((l) => l.type === 'sample'), { timeoutMs: 30000 }));
  const [sidecar] = childrenOf(child.pid);
  process.kill(sidecar, 'SIGKILL');
  const { code } = await child.done;
  assert.equal(code, EXIT_CODES.SIDECAR_EXITED);
  const { error } = child.lines.at(-1);
  assert.equal(error.code, 'SIDECAR_EXITED');
  assert.match(error.message, /killed by SIGKILL; there are no more samples/);
  assert.match(error.hint, /Run the monitor again/);
});

test('--port needs --web; --once goes alone; --web takes no --count: usage errors that say what to do', async () => {
  const port = await runCli(['monitor', '--port', '8080', '--json']);
  assert.equal(port.code, EXIT_CODES.USAGE);
  assert.match(port.lines[0].error.message, /--port .* needs --web/);
  const once = await runCli(['monitor', '--once', '--count', '2', '--json']);
  assert.equal(once.code, EXIT_CODES.USAGE);
  assert.match(once.lines[0].error.hint, /--once alone/);
  const web = await runCli(['monitor', '--web', '--count', '2', '--json']);
  assert.equal(web.code, EXIT_CODES.USAGE);
  assert.match(web.lines[0].error.message, /--web .* does not go with --count/);
});
