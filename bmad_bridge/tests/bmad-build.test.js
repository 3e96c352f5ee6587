'use strict';
/**
 * BMad's own v4 builder judges the pack: bmad-method@4.44.3 from the npm registry (cached in
 * the OS temp dir between runs), the pack copied into its expansion-packs/<name>/, then
 * `node tools/cli.js build:expansions`. Every agent must be bundled with every dependency and
 * no "not found in expansion pack or core" warning. A failed install fails the test; it is
 * never skipped.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const yaml = require('js-yaml');
const { PACK } = require('./helpers');

const BMAD_VERSION = '4.44.3';
const CACHE = path.join(os.tmpdir(), `bmad-data-bmad-method-${BMAD_VERSION}`);
const BMAD = path.join(CACHE, 'node_modules', 'bmad-method');

function run(command, args, options) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { out += c; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

async function installBmad() {
  const manifest = path.join(BMAD, 'package.json');
  if (fs.existsSync(manifest) && JSON.parse(fs.readFileSync(manifest, 'utf8')).version === BMAD_VERSION) return;
  fs.mkdirSync(CACHE, { recursive: true });
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const { code, out } = await run(npm, ['install', '--prefix', CACHE, `bmad-method@${BMAD_VERSION}`, '--no-audit', '--no-fund', '--loglevel=error'], {});
  assert.equal(code, 0, `npm install bmad-method@${BMAD_VERSION} failed (registry access is required):\n${out}`);
}

test(`bmad-method@${BMAD_VERSION} build:expansions bundles every agent of the pack, warning-free`, { timeout: 240000 }, async () => {
  await installBmad();
  const { name } = yaml.load(fs.readFileSync(path.join(PACK, 'config.yaml'), 'utf8'));
  const target = path.join(BMAD, 'expansion-packs', name);
  fs.rmSync(target, { recursive: true, force: true });
  fs.cpSync(PACK, target, { recursive: true });

  const { code, out } = await run(process.execPath, ['tools/cli.js', 'build:expansions'], { cwd: BMAD });
  assert.equal(code, 0, out);
  const start = out.indexOf(`Building expansion pack: ${name}\n`);
  assert.ok(start >= 0, `the builder found the pack:\n${out}`);
  const next = out.indexOf('Building expansion pack:', start + 1);
  const section = out.slice(start, next === -1 ? undefined : next);
  assert.doesNotMatch(section, /not found in expansion pack or core/, section);
  assert.doesNotMatch(section, /⚠/, section);

  const agents = fs.readdirSync(path.join(PACK, 'agents')).filter((f) => f.endsWith('.md'));
  assert.ok(agents.length > 0);
  for (const file of agents) {
    const id = file.replace(/\.md$/, '');
    assert.match(section, new RegExp(`- ${id}\\n`), `the builder built agent ${id}`);
    const bundle = fs.readFileSync(path.join(BMAD, 'dist', 'expansion-packs', name, 'agents', `${id}.txt`), 'utf8');
    // The builder swallows an unparsable agent YAML block (console.debug) and bundles no
    // dependencies, so check each dependency really landed in the bundle.
    const block = fs.readFileSync(path.join(PACK, 'agents', file), 'utf8').match(/```yaml\n([\s\S]*?)\n```/)[1];
    for (const [type, names] of Object.entries(yaml.load(block).dependencies)) {
      for (const dep of names) {
        assert.ok(bundle.includes(`==================== START: .${name}/${type}/${dep} ====================`), `${id} bundle holds ${type}/${dep}`);
      }
    }
  }
  for (const team of fs.readdirSync(path.join(PACK, 'agent-teams'))) {
    const bundle = path.join(BMAD, 'dist', 'expansion-packs', name, 'teams', team.replace(/\.yaml$/, '.txt'));
    assert.ok(fs.statSync(bundle).size > 0, `team bundle ${team}`);
  }
});
