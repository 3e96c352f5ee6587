'use strict';
/**
 * Shared test helpers. Everything here drives the REAL sidecar (`python -m sidecar`) over real
 * pipes; nothing is mocked. BMAD_DATA_PYTHON picks the interpreter (scripts/test.sh sets it).
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const yaml = require('js-yaml');
const { SidecarClient } = require('../lib/client');
const { DEFAULT_ROOT } = require('../lib/locate');

// Every CLI a test starts runs its own private sidecar, as before the daemon existed; the daemon's
// own tests (daemon.test.js) turn it on with a runtime dir of their own and stop it in teardown.
if (process.env.BMAD_DATA_NO_DAEMON === undefined) process.env.BMAD_DATA_NO_DAEMON = '1';

const REPO = DEFAULT_ROOT;
const PACK = path.join(REPO, 'expansion-pack');
const BIN = path.join(__dirname, '..', 'bin', 'bmad-data.js');

function tempDir(prefix = 'bmad-data-test-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * A temporary copy of the repo's expansion pack, with feature flags changed:
 * `flags` maps flag name -> enabled (true/false); `cli` edits the CLI config object in place.
 */
function packCopy({ flags = {}, cli } = {}) {
  const dir = tempDir('bmad-data-pack-');
  fs.cpSync(PACK, dir, { recursive: true });
  const flagsFile = path.join(dir, 'config', 'feature-flags.yaml');
  if (Object.keys(flags).length) {
    const doc = yaml.load(fs.readFileSync(flagsFile, 'utf8'));
    for (const [name, enabled] of Object.entries(flags)) {
      if (!doc.features[name]) throw new Error(`the pack declares no flag '${name}'`);
      doc.features[name].enabled = enabled;
    }
    fs.writeFileSync(flagsFile, yaml.dump(doc));
  }
  if (cli) {
    const cliFile = path.join(dir, 'data', 'duckdb-cli-integration-config.yaml');
    const doc = yaml.load(fs.readFileSync(cliFile, 'utf8'));
    cli(doc);
    fs.writeFileSync(cliFile, yaml.dump(doc));
  }
  return dir;
}

/** A started client on the repo's own pack (or `initialize` params given). */
async function startClient(options = {}) {
  const client = new SidecarClient({ cwd: options.cwd || tempDir(), ...options });
  client.on('protocol-error', (err) => { (client.seenProtocolErrors ||= []).push(err); });
  await client.start();
  return client;
}

/** Run a process to its end; resolves {code, signal, stdout, stderr}. SIGKILL after `timeoutMs`. */
function runProcess(command, args, { cwd, env = process.env, timeoutMs = 60000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr += c; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * Run the CLI; resolves {code, stdout, stderr, lines (parsed JSON lines when --json)}.
 * Runs in `cwd` (a temp dir by default) with NO_COLOR unset unless given.
 */
async function runCli(args, { env = {}, cwd, timeoutMs = 60000 } = {}) {
  const result = await runProcess(process.execPath, [BIN, ...args], { cwd: cwd || tempDir(), env: { ...process.env, ...env }, timeoutMs });
  result.lines = null;
  if (args.includes('--json')) {
    result.lines = result.stdout.split('\n').filter((l) => l !== '').map((l) => {
      try {
        return JSON.parse(l);
      } catch (err) {
        throw new Error(`--json printed a line that is not JSON: ${JSON.stringify(l)}\n${result.stdout}`);
      }
    });
  }
  return result;
}

/** True while a process with this pid exists. */
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(predicate, { timeoutMs = 10000, stepMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return false;
}

/** A query that keeps DuckDB busy for roughly `seconds` on this machine (1 thread). */
const busySql = (rows) => `SELECT count(*) AS n FROM range(${rows}) t(i) WHERE hash(i) % 7 = 1`;

module.exports = { REPO, PACK, BIN, tempDir, packCopy, startClient, runProcess, runCli, alive, waitFor, busySql };
