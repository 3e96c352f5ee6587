'use strict';
/**
 * `bmad-data setup`: create the venv the CLI runs the sidecar from, outside any checkout.
 *
 * The npm package carries python/requirements.lock (hash-locked) and python/bmad_data_sidecar-*.whl
 * (both put there by `npm pack`, see scripts/bundle-python.js). setup makes <data dir>/venv with a
 * Python >= 3.11, installs the lock with --require-hashes, then the wheel, and checks the result
 * answers `--version`. In a checkout it uses the checkout's lock and source instead. A second run
 * with the same lock and wheel only checks. tests/install.test.js runs it in a clean project.
 */
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { promisify } = require('node:util');
const { BmadDataError } = require('../../errors');
const { runCommand } = require('../session');
const { DEFAULT_ROOT, repoRoot, isCheckout, managedVenv, dataDir } = require('../../locate');

const run = promisify(execFile);
const PACKAGE_DIR = path.resolve(__dirname, '..', '..', '..');
const STAMP = '.bmad-data-setup.json';

function register(program) {
  program
    .command('setup')
    .description('Create the venv the sidecar runs from (in your data dir; BMAD_DATA_HOME moves it) from the shipped lock file')
    .option('--python <path>', 'the Python >= 3.11 to build the venv with (default: BMAD_DATA_PYTHON, python3)')
    .option('--force', 'recreate the venv even when it is up to date')
    .action(async (opts, cmd) => {
      await runCommand('setup', cmd.optsWithGlobals(), (ctx) => handle(ctx, opts), { start: false, gate: false });
    });
}

/** What to install: {lock, sidecar, from} from the package's python/ folder, else the checkout. */
function payload(env = process.env) {
  const shipped = path.join(PACKAGE_DIR, 'python');
  const lock = path.join(shipped, 'requirements.lock');
  if (fs.existsSync(lock)) {
    const wheels = fs.readdirSync(shipped).filter((f) => /^bmad_data_sidecar-.*\.whl$/.test(f)).sort();
    if (wheels.length) return { lock, sidecar: path.join(shipped, wheels[wheels.length - 1]), from: 'the npm package' };
  }
  const root = env.BMAD_DATA_ROOT ? repoRoot(env) : DEFAULT_ROOT;
  if (isCheckout(root)) return { lock: path.join(root, 'requirements.lock'), sidecar: root, from: `the checkout ${root}` };
  throw new BmadDataError('SIDECAR_UNAVAILABLE', `this bmad-data package carries no sidecar wheel (no ${shipped}/bmad_data_sidecar-*.whl)`, {
    hint: 'Install bmad-data from a tarball made by `npm pack` in bmad_bridge/ of a bmad-data checkout, or install the sidecar yourself (`pip install <checkout>`) and set BMAD_DATA_PYTHON to that Python.',
  });
}

function sha256(file) {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

async function pythonVersion(python) {
  const { stdout, stderr } = await run(python, ['-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3])'], { timeout: 30000 });
  return (stdout || stderr).trim();
}

async function findPython(opts, env) {
  const candidates = opts.python ? [opts.python] : [env.BMAD_DATA_PYTHON, 'python3', 'python'].filter(Boolean);
  const tried = [];
  for (const python of candidates) {
    try {
      const version = await pythonVersion(python);
      const [major, minor] = version.split('.').map(Number);
      if (major === 3 && minor >= 11) return { python, version };
      tried.push(`${python} is ${version}`);
    } catch (err) {
      tried.push(`${python}: ${err.code === 'ENOENT' ? 'not found' : err.message.split('\n')[0]}`);
    }
  }
  throw new BmadDataError('SIDECAR_UNAVAILABLE', `no Python >= 3.11 to build the venv with (${tried.join('; ')})`, {
    hint: 'Install Python 3.11 or newer (python.org, your package manager, or `uv python install 3.12`), then run `npx bmad-data setup --python <path to it>`.',
    details: { tried },
  });
}

async function step(what, file, args) {
  try {
    return await run(file, args, { maxBuffer: 64 * 1024 * 1024, timeout: 15 * 60 * 1000 });
  } catch (err) {
    const tail = `${err.stderr || ''}${err.stdout || ''}`.trim().split('\n').slice(-15);
    throw new BmadDataError('SIDECAR_UNAVAILABLE', `setup failed while ${what}: ${err.message.split('\n')[0]}`, {
      hint: 'Read the output tail in details; a network error needs access to the package index (pip), then run `npx bmad-data setup --force`.',
      details: { command: [file, ...args].join(' '), output_tail: tail },
    });
  }
}

async function handle({ reporter }, opts, env = process.env) {
  const what = payload(env);
  const venv = managedVenv(env);
  const stampFile = path.join(venv.dir, STAMP);
  const want = { lock_sha256: sha256(what.lock), sidecar: fs.statSync(what.sidecar).isFile() ? sha256(what.sidecar) : what.sidecar };
  const stamp = readJson(stampFile);
  const upToDate = !opts.force && stamp && stamp.lock_sha256 === want.lock_sha256 && stamp.sidecar === want.sidecar && fs.existsSync(venv.python);
  if (!upToDate) {
    const { python, version } = await findPython(opts, env);
    reporter.info(`🐍 Creating the sidecar's venv in ${venv.dir} with Python ${version} (${python})...`);
    fs.rmSync(venv.dir, { recursive: true, force: true });
    fs.mkdirSync(path.dirname(venv.dir), { recursive: true });
    await step('creating the venv', python, ['-m', 'venv', venv.dir]);
    reporter.info(`📦 Installing the locked dependencies (${path.basename(what.lock)}, hash-checked)...`);
    await step('installing requirements.lock', venv.python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--require-hashes', '-r', what.lock]);
    reporter.info(`📦 Installing the sidecar from ${what.from}...`);
    await step('installing the sidecar', venv.python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', what.sidecar]);
    fs.writeFileSync(stampFile, `${JSON.stringify(want)}\n`);
  }
  const { stdout } = await step('checking the installed sidecar', venv.python, ['-P', '-m', 'sidecar', '--version']);
  const data = { venv: venv.dir, python: venv.python, sidecar_version: stdout.trim(), data_dir: dataDir(env), from: what.from, changed: !upToDate };
  reporter.result('setup', data, (d, r) => {
    r.success(`${d.changed ? 'Set up' : 'Already set up'}: sidecar ${d.sidecar_version} in ${d.venv}`);
    r.detail('   bmad-data uses this venv from now on; BMAD_DATA_HOME moves it, `bmad-data setup --force` rebuilds it. Next: `npx bmad-data doctor`.');
  });
}

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

module.exports = { register, payload, PACKAGE_DIR };
