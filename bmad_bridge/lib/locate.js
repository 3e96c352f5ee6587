'use strict';
/**
 * Where the sidecar lives and which Python runs it.
 *
 * Two ways to be installed:
 * - in a bmad-data checkout (this package is its bmad_bridge/ folder, or `npm install` linked it):
 *   the root holds sidecar/, `python -m sidecar` resolves there through PYTHONPATH, and the
 *   checkout's .venv is the interpreter. BMAD_DATA_ROOT names a checkout explicitly.
 * - from the npm tarball, in any project: no checkout around. The sidecar is a wheel, either in the
 *   venv that `bmad-data setup` manages (<data dir>/venv) or installed by the user (its
 *   `bmad-data-sidecar` script on PATH, or BMAD_DATA_PYTHON naming a Python that has it).
 * tests/install.test.js packs, installs and runs the second case in a clean project.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const DEFAULT_ROOT = path.resolve(__dirname, '..', '..');
const WINDOWS = process.platform === 'win32';

function repoRoot(env = process.env) {
  return env.BMAD_DATA_ROOT ? path.resolve(env.BMAD_DATA_ROOT) : DEFAULT_ROOT;
}

/** True when `root` is a bmad-data checkout (it holds the sidecar's source). */
function isCheckout(root) {
  return fs.existsSync(path.join(root, 'sidecar', '__init__.py'));
}

/**
 * Where `bmad-data setup` keeps its files: BMAD_DATA_HOME, else the user's data dir
 * ($XDG_DATA_HOME/bmad-data or ~/.local/share/bmad-data; %LOCALAPPDATA%\bmad-data on Windows).
 */
function dataDir(env = process.env) {
  if (env.BMAD_DATA_HOME) return path.resolve(env.BMAD_DATA_HOME);
  if (WINDOWS && env.LOCALAPPDATA) return path.join(env.LOCALAPPDATA, 'bmad-data');
  const base = env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  return path.join(base, 'bmad-data');
}

/** The venv `bmad-data setup` creates, and its interpreter. */
function managedVenv(env = process.env) {
  const dir = path.join(dataDir(env), 'venv');
  return { dir, python: venvPython(dir) };
}

function venvPython(dir) {
  return WINDOWS ? path.join(dir, 'Scripts', 'python.exe') : path.join(dir, 'bin', 'python');
}

/** The first `name` on PATH, or null. */
function onPath(name, env = process.env) {
  const exts = WINDOWS ? (env.PATHEXT || '.EXE;.CMD;.BAT').split(';') : [''];
  for (const dir of (env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    for (const ext of exts) {
      const candidate = path.join(dir, name + ext);
      try {
        fs.accessSync(candidate, fs.constants.X_OK);
        if (fs.statSync(candidate).isFile()) return candidate;
      } catch { /* not here */ }
    }
  }
  return null;
}

/**
 * The interpreter a pip-installed console script runs with, read from its first lines: either
 * `#!/path/python` or, for long paths, pip's `#!/bin/sh` + `'''exec' "/path/python" "$0" "$@"`.
 */
function scriptInterpreter(script) {
  let head;
  try {
    head = fs.readFileSync(script, 'utf8').slice(0, 1024);
  } catch {
    return null;
  }
  const exec = head.match(/^'''exec' "?([^"\n]+?)"? "\$0"/m);
  if (exec) return exec[1];
  const bang = head.match(/^#!\s*(\S*python[^\s]*)/);
  return bang ? bang[1] : null;
}

/**
 * The interpreter and why it was chosen. Returns {command, source}. In order: BMAD_DATA_PYTHON;
 * in a checkout, its .venv; the venv `bmad-data setup` made; the Python of a `bmad-data-sidecar`
 * on PATH; else python3 on PATH (which may lack the sidecar: `doctor` then says to run setup).
 */
function resolvePython(root = repoRoot(), env = process.env) {
  if (env.BMAD_DATA_PYTHON) return { command: env.BMAD_DATA_PYTHON, source: 'BMAD_DATA_PYTHON' };
  if (isCheckout(root)) {
    const venv = venvPython(path.join(root, '.venv'));
    if (fs.existsSync(venv)) return { command: venv, source: 'the project .venv' };
  }
  const managed = managedVenv(env);
  if (fs.existsSync(managed.python)) return { command: managed.python, source: `the venv of \`bmad-data setup\` (${managed.dir})` };
  const script = onPath('bmad-data-sidecar', env);
  const interpreter = script && scriptInterpreter(script);
  if (interpreter) return { command: interpreter, source: `bmad-data-sidecar on PATH (${script})` };
  return { command: WINDOWS ? 'python' : 'python3', source: 'PATH' };
}

/**
 * The environment the sidecar runs with. In a checkout PYTHONPATH gains the root so `-m sidecar`
 * resolves; an installed sidecar needs nothing added.
 */
function sidecarEnv(root, env = process.env, extra = {}) {
  const pythonPath = env.PYTHONPATH ? `${root}${path.delimiter}${env.PYTHONPATH}` : root;
  const added = isCheckout(root) ? { PYTHONPATH: pythonPath } : {};
  return { ...env, ...added, PYTHONUNBUFFERED: '1', PYTHONIOENCODING: 'utf-8', ...extra };
}

module.exports = { repoRoot, isCheckout, dataDir, managedVenv, venvPython, onPath, scriptInterpreter, resolvePython, sidecarEnv, DEFAULT_ROOT };
