'use strict';
/**
 * The CLI as a user installs it: `npm pack` of bmad_bridge/ (its prepack bundles the sidecar wheel
 * and requirements.lock), `npm install ./bmad-data-*.tgz` into a clean project, then `npx bmad-data`
 * there with no BMAD_DATA_PYTHON, BMAD_DATA_ROOT or PYTHONPATH: nothing points back at this checkout.
 * BMAD_DATA_HOME keeps setup's venv in the test's temp dir. Needs the npm registry (or npm's cache)
 * for the package's dependencies and pip's index (or its cache) for the lock; a failure fails.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { tempDir, runProcess } = require('./helpers');

const PACKAGE_DIR = path.resolve(__dirname, '..');
const REPO = path.resolve(PACKAGE_DIR, '..');
const { version } = require('../package.json');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const NPX = process.platform === 'win32' ? 'npx.cmd' : 'npx';
// The Python that builds the wheel and the setup venv: the one the suite runs with, else python3.
const PYTHON = process.env.BMAD_DATA_PYTHON || 'python3';

const run = (command, args, options) => runProcess(command, args, { timeoutMs: 300000, ...options });

/** The user's environment: no variable that names this checkout or its Python. */
function userEnv(extra = {}) {
  const env = { ...process.env, ...extra };
  for (const key of Object.keys(env)) {
    if ((key.startsWith('BMAD_DATA_') && !(key in extra)) || key === 'PYTHONPATH') delete env[key];
  }
  return env;
}

const jsonLines = (stdout) => stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));

test('npm pack installs into a clean project; setup, doctor and a query work there', { timeout: 600000 }, async (t) => {
  const work = tempDir('bmad-data-install-');
  let stopDaemon = async () => {};
  t.after(async () => {
    await stopDaemon(); // before its files go
    fs.rmSync(work, { recursive: true, force: true });
  });
  const packed = await run(NPM, ['pack', '--pack-destination', work, '--loglevel=error'], { cwd: PACKAGE_DIR, env: { ...process.env, BMAD_DATA_PYTHON: PYTHON } });
  assert.equal(packed.code, 0, `npm pack failed:\n${packed.stdout}\n${packed.stderr}`);
  const tarball = fs.readdirSync(work).find((f) => /^bmad-data-.*\.tgz$/.test(f));
  assert.ok(tarball, `no tarball in ${work}`);
  assert.ok(!fs.existsSync(path.join(PACKAGE_DIR, 'python')), 'postpack removes the bundled python/ from the checkout');

  const project = path.join(work, 'project');
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, 'package.json'), '{"name": "a-bmad-project", "version": "1.0.0", "private": true}\n');
  const installed = await run(NPM, ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', path.join(work, tarball)], { cwd: project });
  assert.equal(installed.code, 0, `npm install of the tarball failed:\n${installed.stdout}\n${installed.stderr}`);
  const shipped = fs.readdirSync(path.join(project, 'node_modules', 'bmad-data', 'python'));
  assert.ok(shipped.includes('requirements.lock') && shipped.some((f) => f.endsWith('.whl')), shipped.join(', '));

  const home = path.join(work, 'home');
  // As a user runs it: the first query starts the daemon. Its socket goes under `work`, and it is
  // stopped before `work` goes, so no daemon outlives the test (one idled 15 minutes once).
  const env = userEnv({ BMAD_DATA_HOME: home, BMAD_DATA_RUNTIME_DIR: path.join(work, 'run') });
  const npx = (args, extraEnv = {}) => run(NPX, ['--no-install', 'bmad-data', ...args], { cwd: project, env: { ...env, ...extraEnv } });
  stopDaemon = async () => {
    const stopped = await npx(['daemon', 'stop', '--json']);
    assert.equal(stopped.code, 0, stopped.stdout + stopped.stderr);
  };

  await t.test('before setup, doctor fails and says to run setup', async () => {
    const doctor = await npx(['doctor', '--json']);
    assert.equal(doctor.code, 14, doctor.stdout + doctor.stderr);
    const failed = jsonLines(doctor.stdout).filter((l) => l.type === 'check' && l.status === 'fail');
    assert.ok(failed.length > 0, doctor.stdout);
    assert.match(failed[0].fix, /npx bmad-data setup/, failed[0].fix);
  });

  await t.test('without a usable Python, doctor says to install one and then run setup', async () => {
    const doctor = await npx(['doctor', '--json'], { BMAD_DATA_PYTHON: path.join(work, 'no-such-python3') });
    assert.equal(doctor.code, 14, doctor.stdout + doctor.stderr);
    const python = jsonLines(doctor.stdout).find((l) => l.type === 'check' && l.name === 'python');
    assert.equal(python.status, 'fail');
    assert.match(python.fix, /Install Python >= 3\.11, then run `npx bmad-data setup`/);
  });

  await t.test('setup builds the venv in BMAD_DATA_HOME from the shipped lock and wheel, then only checks', async () => {
    const setup = await npx(['setup', '--python', PYTHON, '--json']);
    assert.equal(setup.code, 0, setup.stdout + setup.stderr);
    const result = jsonLines(setup.stdout).find((l) => l.type === 'result').data;
    assert.equal(result.venv, path.join(home, 'venv'));
    assert.equal(result.from, 'the npm package');
    assert.equal(result.changed, true);
    assert.match(result.sidecar_version, /^\d+\.\d+\.\d+/);
    const again = await npx(['setup', '--json']);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.equal(jsonLines(again.stdout).find((l) => l.type === 'result').data.changed, false);
  });

  await t.test('doctor passes with the managed venv, and a query answers', async () => {
    const doctor = await npx(['doctor', '--json']);
    assert.equal(doctor.code, 0, doctor.stdout + doctor.stderr);
    const sidecar = jsonLines(doctor.stdout).find((l) => l.type === 'check' && l.name === 'sidecar');
    assert.equal(sidecar.status, 'ok');
    assert.match(sidecar.message, /bmad-data setup/);
    const query = await npx(['query', 'SELECT 42 AS answer', '--json']);
    assert.equal(query.code, 0, query.stdout + query.stderr);
    assert.deepEqual(jsonLines(query.stdout).find((l) => l.type === 'result').data.rows, [[42]]);
  });

  await t.test('in a v4 project, the pack copied to .bmad-data-duckdb/ is the config in force', async () => {
    const copy = path.join(project, '.bmad-data-duckdb');
    fs.cpSync(path.join(REPO, 'expansion-pack'), copy, { recursive: true });
    const status = await npx(['status', '--json'], { BMAD_DATA_CONFIG_DIR: copy });
    assert.equal(status.code, 0, status.stdout + status.stderr);
    assert.equal(jsonLines(status.stdout).find((l) => l.type === 'result').data.config_dir, copy);
  });

  await t.test('a sidecar wheel whose bmad-data-sidecar is on PATH is found without setup', async () => {
    const bin = path.join(home, 'venv', process.platform === 'win32' ? 'Scripts' : 'bin');
    const elsewhere = { BMAD_DATA_HOME: path.join(work, 'no-setup-here'), PATH: `${bin}${path.delimiter}${process.env.PATH}` };
    const doctor = await npx(['doctor', '--json'], elsewhere);
    assert.equal(doctor.code, 0, doctor.stdout + doctor.stderr);
    const sidecar = jsonLines(doctor.stdout).find((l) => l.type === 'check' && l.name === 'sidecar');
    assert.match(sidecar.message, /bmad-data-sidecar on PATH/);
  });
});

test("the README's install commands are the ones this test runs", () => {
  const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
  for (const line of [
    'cd bmad_bridge && npm pack',
    `npm install /path/to/bmad-data/bmad_bridge/bmad-data-${version}.tgz && npx bmad-data setup`,
    'mkdir -p .bmad-data-duckdb && cp -r /path/to/bmad-data/expansion-pack/. .bmad-data-duckdb/',
  ]) assert.ok(readme.includes(line), `README.md shows: ${line}`);
});

test('the Python of a pip console script is read from either shebang form pip writes', () => {
  const { scriptInterpreter } = require('../lib/locate');
  const dir = tempDir('bmad-data-scripts-');
  const short = path.join(dir, 'short');
  fs.writeFileSync(short, '#!/opt/venv/bin/python3.12\nimport sys\n');
  const long = path.join(dir, 'long'); // pip's form when the interpreter path is too long for #!
  fs.writeFileSync(long, '#!/bin/sh\n\'\'\'exec\' "/a very/long path/venv/bin/python" "$0" "$@"\n\' \'\'\'\nimport sys\n');
  const notPython = path.join(dir, 'other');
  fs.writeFileSync(notPython, '#!/bin/bash\necho hi\n');
  assert.equal(scriptInterpreter(short), '/opt/venv/bin/python3.12');
  assert.equal(scriptInterpreter(long), '/a very/long path/venv/bin/python');
  assert.equal(scriptInterpreter(notPython), null);
  assert.equal(scriptInterpreter(path.join(dir, 'missing')), null);
  fs.rmSync(dir, { recursive: true, force: true });
});
