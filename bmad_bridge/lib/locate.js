'use strict';
/**
 * Where the sidecar lives and which Python runs it.
 *
 * The repository root is the folder holding bmad_bridge/ (this package); `python -m sidecar`
 * resolves there. BMAD_DATA_ROOT overrides it for installs that copy the bridge elsewhere.
 */
const fs = require('node:fs');
const path = require('node:path');

const DEFAULT_ROOT = path.resolve(__dirname, '..', '..');

function repoRoot(env = process.env) {
  return env.BMAD_DATA_ROOT ? path.resolve(env.BMAD_DATA_ROOT) : DEFAULT_ROOT;
}

/**
 * The interpreter and why it was chosen: BMAD_DATA_PYTHON, then <root>/.venv, then python3.
 * Returns {command, source}.
 */
function resolvePython(root = repoRoot(), env = process.env) {
  if (env.BMAD_DATA_PYTHON) return { command: env.BMAD_DATA_PYTHON, source: 'BMAD_DATA_PYTHON' };
  const venv = process.platform === 'win32'
    ? path.join(root, '.venv', 'Scripts', 'python.exe')
    : path.join(root, '.venv', 'bin', 'python');
  if (fs.existsSync(venv)) return { command: venv, source: 'the project .venv' };
  return { command: process.platform === 'win32' ? 'python' : 'python3', source: 'PATH' };
}

/** The environment the sidecar runs with: PYTHONPATH gains the root so `-m sidecar` resolves. */
function sidecarEnv(root, env = process.env, extra = {}) {
  const pythonPath = env.PYTHONPATH ? `${root}${path.delimiter}${env.PYTHONPATH}` : root;
  return { ...env, PYTHONPATH: pythonPath, PYTHONUNBUFFERED: '1', PYTHONIOENCODING: 'utf-8', ...extra };
}

module.exports = { repoRoot, resolvePython, sidecarEnv, DEFAULT_ROOT };
