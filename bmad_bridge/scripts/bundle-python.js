#!/usr/bin/env node
'use strict';
/**
 * `npm pack` hook: put what `bmad-data setup` installs into python/ of the package, so a tarball
 * works in any project without the checkout it was built from: the hash-locked requirements.lock
 * and a wheel of the sidecar built from this checkout (`pip wheel --no-deps`).
 * `--clean` (postpack) removes python/ again. The Python: BMAD_DATA_PYTHON, else python3.
 */
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const PACKAGE_DIR = path.resolve(__dirname, '..');
const ROOT = path.resolve(PACKAGE_DIR, '..');
const OUT = path.join(PACKAGE_DIR, 'python');

function clean() {
  fs.rmSync(OUT, { recursive: true, force: true });
  fs.rmSync(path.join(ROOT, 'build'), { recursive: true, force: true }); // setuptools' in-tree leftovers
}

function bundle() {
  if (!fs.existsSync(path.join(ROOT, 'pyproject.toml'))) {
    throw new Error(`bundle-python: ${ROOT} is not a bmad-data checkout; npm pack must run in its bmad_bridge/`);
  }
  clean();
  fs.mkdirSync(OUT, { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'requirements.lock'), path.join(OUT, 'requirements.lock'));
  const python = process.env.BMAD_DATA_PYTHON || (process.platform === 'win32' ? 'python' : 'python3');
  execFileSync(python, ['-m', 'pip', 'wheel', '--quiet', '--disable-pip-version-check', '--no-deps', '--wheel-dir', OUT, ROOT], { stdio: ['ignore', 'inherit', 'inherit'] });
  fs.rmSync(path.join(ROOT, 'build'), { recursive: true, force: true });
  const wheels = fs.readdirSync(OUT).filter((f) => f.endsWith('.whl'));
  if (wheels.length !== 1) throw new Error(`bundle-python: expected one wheel in ${OUT}, found ${wheels.join(', ') || 'none'}`);
}

if (process.argv.includes('--clean')) clean();
else bundle();
