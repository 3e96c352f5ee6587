'use strict';
/**
 * The pack as a BMad v6 module (bmad-module/, generated from expansion-pack/ by
 * scripts/build-v6-module.js), judged by BMad v6 itself: bmad-method@6.12.0 from the npm registry.
 * Its own skill validator (tools/validate_skills.py --strict) must find nothing, and its real
 * installer, run non-interactively as a user would, must write the skills and record the module.
 * The installer exits 0 even when it installs nothing, so the test reads the files it wrote.
 * A registry failure fails the test; it is never skipped.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const yaml = require('js-yaml');
const { buildModule, drift, OUT, PACK, MODULE_CODE } = require('../scripts/build-v6-module');
const { tempDir, runProcess } = require('./helpers');

const BMAD_VERSION = '6.12.0';
const CACHE = path.join(os.tmpdir(), `bmad-data-bmad-method-${BMAD_VERSION}-tarball`);
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const NPX = process.platform === 'win32' ? 'npx.cmd' : 'npx';
const PYTHON = process.env.BMAD_DATA_PYTHON || 'python3';

const skillDirs = (dir) => fs.readdirSync(dir).filter((d) => fs.existsSync(path.join(dir, d, 'SKILL.md'))).sort();

/** bmad-method's published files (for tools/validate_skills.py), unpacked once per machine. */
async function bmadPackage() {
  const pkg = path.join(CACHE, 'package');
  if (fs.existsSync(path.join(pkg, 'tools', 'validate_skills.py'))) return pkg;
  fs.rmSync(CACHE, { recursive: true, force: true });
  fs.mkdirSync(CACHE, { recursive: true });
  const packed = await runProcess(NPM, ['pack', `bmad-method@${BMAD_VERSION}`, '--pack-destination', CACHE, '--loglevel=error'], { timeoutMs: 300000 });
  assert.equal(packed.code, 0, `npm pack bmad-method@${BMAD_VERSION} failed (registry access is required):\n${packed.stdout}\n${packed.stderr}`);
  const tarball = fs.readdirSync(CACHE).find((f) => f.endsWith('.tgz'));
  const untar = await runProcess('tar', ['xzf', tarball], { cwd: CACHE });
  assert.equal(untar.code, 0, untar.stderr);
  return pkg;
}

test('the committed bmad-module/ is what the generator makes from expansion-pack/', () => {
  assert.deepEqual(drift(), [], 'bmad-module/ is out of date: run `node bmad_bridge/scripts/build-v6-module.js`');
});

test('every task, agent and workflow of the pack becomes a skill named after its folder, also one added later', () => {
  const pack = tempDir('bmad-data-v4pack-');
  fs.cpSync(PACK, pack, { recursive: true });
  fs.writeFileSync(path.join(pack, 'tasks', 'convert-a-dataset.md'), '# Convert a Dataset\n\n## Purpose\n\nRewrite a CSV as Parquet.\n\n## Instructions\n\nRun `bmad-data query`.\n');
  const files = buildModule(pack);
  const skills = Object.keys(files).filter((f) => f.endsWith('/SKILL.md')).map((f) => f.split('/')[0]).sort();
  const expected = [
    ...fs.readdirSync(path.join(pack, 'tasks')).map((f) => `${MODULE_CODE}-${path.basename(f, '.md')}`),
    ...fs.readdirSync(path.join(pack, 'workflows')).map((f) => `${MODULE_CODE}-${path.basename(f, '.yaml')}`),
    ...fs.readdirSync(path.join(pack, 'agents')).map((f) => `${MODULE_CODE}-${path.basename(f, '.md').replace(/^data-/, '')}`),
  ].sort();
  assert.deepEqual(skills, expected);
  for (const skill of skills) {
    const name = files[`${skill}/SKILL.md`].match(/^---\nname: (\S+)\n/);
    assert.equal(name && name[1], skill);
  }
  assert.match(files[`${MODULE_CODE}-convert-a-dataset/SKILL.md`], /description: "Rewrite a CSV as Parquet\. Use when the user asks to convert a dataset\."/);
  const help = files['module-help.csv'].trim().split('\n');
  assert.equal(help[0], 'module,skill,display-name,menu-code,description,action,args,phase,preceded-by,followed-by,required,output-location,outputs');
  assert.deepEqual(help.slice(1).map((row) => row.split(',')[1]).sort(), expected);
  const moduleYaml = yaml.load(files['module.yaml']);
  for (const key of ['code', 'name', 'description', 'module_version', 'agents']) assert.ok(moduleYaml[key], `module.yaml has ${key}`);
  fs.rmSync(pack, { recursive: true, force: true });
});

test(`bmad-method@${BMAD_VERSION}'s validate_skills.py --strict finds nothing in any skill`, { timeout: 300000 }, async () => {
  const pkg = await bmadPackage();
  const dirs = skillDirs(OUT);
  assert.ok(dirs.length >= 3, dirs.join(', '));
  for (const dir of dirs) {
    const run = await runProcess(PYTHON, [path.join(pkg, 'tools', 'validate_skills.py'), '--strict', '--json', path.join(OUT, dir)]);
    assert.equal(run.code, 0, `${dir}:\n${run.stdout}\n${run.stderr}`);
    const findings = JSON.parse(run.stdout); // one object per finding, of any severity
    assert.ok(Array.isArray(findings), run.stdout);
    assert.deepEqual(findings.map((f) => `${f.rule} ${f.severity} ${f.file}: ${f.detail}`), [], dir);
  }
});

test(`npx bmad-method@${BMAD_VERSION} install --custom-source installs the module's skills for claude-code`, { timeout: 600000 }, async (t) => {
  const project = tempDir('bmad-data-v6-project-');
  t.after(() => fs.rmSync(project, { recursive: true, force: true }));
  const args = ['--yes', `bmad-method@${BMAD_VERSION}`, 'install', '--directory', '.', '--custom-source', OUT, '--tools', 'claude-code', '--yes'];
  const run = await runProcess(NPX, args, { cwd: project, timeoutMs: 540000 });
  const log = `${run.stdout}\n${run.stderr}`;
  assert.equal(run.code, 0, log);

  const installed = path.join(project, '.claude', 'skills');
  for (const skill of skillDirs(OUT)) {
    const file = path.join(installed, skill, 'SKILL.md');
    assert.ok(fs.existsSync(file), `${file} was not written:\n${log.slice(-3000)}`);
    assert.equal(fs.readFileSync(file, 'utf8'), fs.readFileSync(path.join(OUT, skill, 'SKILL.md'), 'utf8'));
  }
  const manifest = yaml.load(fs.readFileSync(path.join(project, '_bmad', '_config', 'manifest.yaml'), 'utf8'));
  const mod = manifest.modules.find((m) => m.name === MODULE_CODE);
  assert.ok(mod, `_bmad/_config/manifest.yaml lists no ${MODULE_CODE}: ${JSON.stringify(manifest.modules)}`);
  assert.equal(mod.version, yaml.load(fs.readFileSync(path.join(OUT, 'module.yaml'), 'utf8')).module_version);
  const help = fs.readFileSync(path.join(project, '_bmad', '_config', 'bmad-help.csv'), 'utf8');
  for (const skill of skillDirs(OUT)) assert.match(help, new RegExp(`,${skill},`), `bmad-help.csv lists ${skill}`);
  // The README's command is this one, with the project as the current directory.
  const readme = fs.readFileSync(path.join(OUT, '..', 'README.md'), 'utf8');
  const shown = `npx bmad-method@${BMAD_VERSION} install --directory . --custom-source /path/to/bmad-data/bmad-module --tools claude-code --yes`;
  assert.ok(readme.includes(shown), `README.md shows: ${shown}`);
});
