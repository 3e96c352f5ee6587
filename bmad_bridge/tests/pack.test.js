'use strict';
/**
 * The expansion pack is consistent: every YAML parses, every dependency an agent, team or
 * workflow names exists, every `bmad-data ...` command the pack and the docs tell someone to
 * run exists in the CLI with those options, and the exit-code tables match the code.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const yaml = require('js-yaml');
const { buildProgram } = require('../lib/cli/main');
const { EXIT_CODES } = require('../lib/errors');
const { PACK, REPO } = require('./helpers');

// Resources BMad itself ships (bmad-method common/ and bmad-core/); bmad-build.test.js proves
// the real builder finds them.
// expansion-pack/README.md lists them for readers; tests/test_pack_walk.py keeps the two lists equal.
const BMAD_PROVIDED = new Set([
  'tasks/create-doc.md', 'tasks/execute-checklist.md', 'tasks/advanced-elicitation.md',
  'data/elicitation-methods.md', 'agents/bmad-orchestrator.md',
]);
// The pack's convert/partition tasks land with the CLI's convert/partition commands (issue 10);
// until both branches are merged, their commands are left out of the check below, and only these.
const PENDING_COMMANDS = new Set(['convert', 'partition']);

function walk(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

const packFiles = walk(PACK);
const agentFiles = fs.readdirSync(path.join(PACK, 'agents')).filter((f) => f.endsWith('.md'));

function agentYaml(file) {
  const text = fs.readFileSync(path.join(PACK, 'agents', file), 'utf8');
  const match = text.match(/```ya?ml\n([\s\S]*?)\n```/);
  assert.ok(match, `${file} has a YAML block`);
  return yaml.load(match[1]);
}

function exists(type, name) {
  return fs.existsSync(path.join(PACK, type, name)) || BMAD_PROVIDED.has(`${type}/${name}`);
}

test('every YAML file in the pack, and every agent\'s YAML block, parses', () => {
  const yamls = packFiles.filter((f) => f.endsWith('.yaml'));
  assert.ok(yamls.length >= 8);
  for (const f of yamls) assert.doesNotThrow(() => yaml.load(fs.readFileSync(f, 'utf8')), f);
  for (const f of agentFiles) assert.ok(agentYaml(f).agent.id);
});

test('config.yaml has the fields BMad\'s installer reads', () => {
  const config = yaml.load(fs.readFileSync(path.join(PACK, 'config.yaml'), 'utf8'));
  for (const key of ['name', 'version', 'short-title', 'description', 'author', 'slashPrefix']) {
    assert.ok(config[key], `config.yaml has ${key}`);
  }
});

test('every dependency an agent lists exists', () => {
  assert.ok(agentFiles.includes('data-engineer.md'));
  for (const f of agentFiles) {
    const agent = agentYaml(f);
    assert.equal(`${agent.agent.id}.md`, f, 'the agent id matches its file name');
    for (const [type, names] of Object.entries(agent.dependencies)) {
      for (const name of names) assert.ok(exists(type, name), `${f}: ${type}/${name} exists`);
    }
  }
});

test('every task an agent command executes is one of its dependencies', () => {
  for (const f of agentFiles) {
    const agent = agentYaml(f);
    const deps = new Set(Object.values(agent.dependencies).flat());
    for (const command of agent.commands) {
      const text = typeof command === 'string' ? command : Object.values(command).join(' ');
      for (const [, name] of text.matchAll(/([\w-]+\.(?:md|yaml))/g)) assert.ok(deps.has(name), `${f}: ${name} is a dependency`);
    }
  }
});

test('every agent, task and workflow a team or workflow names exists', () => {
  for (const f of fs.readdirSync(path.join(PACK, 'agent-teams'))) {
    const team = yaml.load(fs.readFileSync(path.join(PACK, 'agent-teams', f), 'utf8'));
    for (const a of team.agents) assert.ok(exists('agents', `${a}.md`), `${f}: agent ${a}`);
    for (const w of team.workflows || []) assert.ok(exists('workflows', w), `${f}: workflow ${w}`);
  }
  for (const f of fs.readdirSync(path.join(PACK, 'workflows'))) {
    const { workflow } = yaml.load(fs.readFileSync(path.join(PACK, 'workflows', f), 'utf8'));
    assert.equal(`${workflow.id}.yaml`, f);
    for (const step of workflow.sequence) {
      assert.ok(exists('agents', `${step.agent}.md`), `${f}: agent ${step.agent}`);
      if (step.uses) assert.ok(exists('tasks', step.uses), `${f}: task ${step.uses}`);
    }
  }
});

/** `bmad-data ...` invocations in backticks, or on a line of a fenced code block. */
function commandsIn(text) {
  const found = [];
  for (const [, cmd] of text.matchAll(/`(bmad-data [^`]+)`/g)) found.push(cmd);
  for (const [, block] of text.matchAll(/```[a-z]*\n([\s\S]*?)```/g)) {
    for (const [, cmd] of block.matchAll(/^\s*(?:\$ )?(bmad-data [^\n`]+)$/gm)) found.push(cmd);
  }
  return found;
}

/** Shell-like split: quotes group words. */
function words(command) {
  return [...command.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]);
}

function checkCommand(program, command, where) {
  const argv = words(command).slice(1);
  const globals = new Set(program.options.flatMap((o) => [o.long, o.short]).filter(Boolean));
  let i = 0;
  while (i < argv.length && globals.has(argv[i])) i += program.options.find((o) => o.long === argv[i] || o.short === argv[i]).required ? 2 : 1;
  const name = argv[i];
  const sub = program.commands.find((c) => c.name() === name);
  assert.ok(sub, `${where}: \`${command}\` names subcommand '${name}', which bmad-data does not have`);
  const known = new Set([...globals, ...sub.options.flatMap((o) => [o.long, o.short]).filter(Boolean)]);
  for (const arg of argv.slice(i + 1)) {
    if (/^--?[a-z]/i.test(arg)) assert.ok(known.has(arg.split('=')[0]), `${where}: \`${command}\` uses option ${arg}, which '${name}' does not have`);
  }
}

test('every bmad-data command the pack and the docs tell someone to run exists, with its options', () => {
  const program = buildProgram();
  const docs = ['bmad-integration.md', 'troubleshooting.md'].map((f) => path.join(REPO, 'docs', f));
  const have = new Set(program.commands.map((c) => c.name()));
  let count = 0;
  for (const file of [...packFiles.filter((f) => /\.(md|yaml)$/.test(f)), ...docs]) {
    for (const command of commandsIn(fs.readFileSync(file, 'utf8'))) {
      const name = words(command)[1];
      if (PENDING_COMMANDS.has(name) && !have.has(name)) continue;
      checkCommand(program, command, path.relative(REPO, file));
      count += 1;
    }
  }
  assert.ok(count >= 40, `checked ${count} commands`);
});

test('the checker itself refuses a made-up subcommand and a made-up option', () => {
  const program = buildProgram();
  assert.throws(() => checkCommand(program, 'bmad-data profile x.csv', 't'), /does not have/);
  assert.throws(() => checkCommand(program, 'bmad-data query "SELECT 1" --fast', 't'), /--fast/);
  assert.doesNotThrow(() => checkCommand(program, 'bmad-data --json query "SELECT 1" --max-rows 3', 't'));
});

/** Rows of an exit-code table: | 3 | FEATURE_DISABLED, COMMAND_DISABLED | ... */
function exitTable(file) {
  const rows = new Map();
  for (const [, exit, codes] of fs.readFileSync(file, 'utf8').matchAll(/^\| (\d+) \| ([A-Z_, ]+) \|/gm)) {
    for (const code of codes.split(',').map((c) => c.trim()).filter(Boolean)) rows.set(code, Number(exit));
  }
  return rows;
}

test('the exit-code tables in the docs and the knowledge base match EXIT_CODES', () => {
  const expected = new Map(Object.entries(EXIT_CODES).filter(([code]) => code !== 'OK'));
  for (const file of [path.join(REPO, 'docs', 'bmad-integration.md'), path.join(PACK, 'data', 'bmad-data-cli-reference.md')]) {
    assert.deepEqual(exitTable(file), expected, path.relative(REPO, file));
  }
});
