#!/usr/bin/env node
'use strict';
/**
 * Generates bmad-module/, the pack as a BMad v6 module, from expansion-pack/ (the v4 pack, the one
 * source of truth). BMad v6 (npm bmad-method 6.x) no longer reads v4 packs: it installs modules made
 * of module.yaml, module-help.csv and one folder per skill, each with a SKILL.md whose frontmatter
 * `name` is its folder's name. Here:
 *   agents/<id>.md          -> bmad-data-<id>/SKILL.md       (persona, rules, menu), plus its data,
 *                              checklists (references/) and templates (assets/)
 *   tasks/<stem>.md         -> bmad-data-<stem>/SKILL.md     (the task's text), plus the pack files it names
 *   workflows/<stem>.yaml   -> bmad-data-<stem>/SKILL.md     (the sequence as numbered steps)
 * ("data-" is not repeated: agents/data-engineer.md becomes bmad-data-engineer.)
 *
 *   node scripts/build-v6-module.js            write bmad-module/
 *   node scripts/build-v6-module.js --check    exit 1 and list what differs from a fresh build
 * tests/v6-module.test.js checks the committed module is up to date, passes v6's validator and
 * installs with v6's installer.
 */
const fs = require('node:fs');
const path = require('node:path');
const yaml = require('js-yaml');

const ROOT = path.resolve(__dirname, '..', '..');
const PACK = path.join(ROOT, 'expansion-pack');
const OUT = path.join(ROOT, 'bmad-module');
const MODULE_CODE = 'bmad-data';
const MODULE_HELP_HEADER = 'module,skill,display-name,menu-code,description,action,args,phase,preceded-by,followed-by,required,output-location,outputs';
const SKILL_NAME = /^bmad-[a-z0-9]+(?:-[a-z0-9]+)*$/;
const GENERATED = 'Generated from the v4 pack (expansion-pack/) by bmad_bridge/scripts/build-v6-module.js: edit the pack, then rerun it.';
const CLI_NOTE = '`bmad-data` is the CLI of the npm package `bmad-data`: inside a project run it as `npx bmad-data ...`; `npx bmad-data doctor` checks it and says what to install.';
// v4 core tasks the agent's commands name; v6 has no such tasks, so the skill says what to do.
const CORE_TASKS = {
  'create-doc.md': 'fill in a template from `assets/` of the `bmad-data-engineer` skill with the user, section by section, and write the document it names',
  'execute-checklist.md': 'go through a checklist from `references/` of the `bmad-data-engineer` skill item by item with the user, marking each done or not',
};
// v4 core files the agent lists as dependencies (expansion-pack/README.md names them); a v6 module carries none of them.
const CORE_DATA = new Set(['elicitation-methods.md']);

const skillName = (stem) => `${MODULE_CODE}-${stem.replace(/^data-/, '')}`;
const stripPowered = (text) => text.replace(/^\s*(#\s*)?<!-- Powered by BMAD™ Core -->\s*\n/, '');
const oneLine = (text) => String(text || '').replace(/\s+/g, ' ').trim();
const csvCell = (value) => (/[",\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value);

function listFiles(dir, ext) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => f.endsWith(ext)).sort();
}

/** The YAML block of a v4 agent file. */
function agentYaml(file) {
  const text = fs.readFileSync(file, 'utf8');
  const match = text.match(/```ya?ml\n([\s\S]*?)\n```/);
  if (!match) throw new Error(`${file}: no \`\`\`yaml block (a v4 agent keeps its definition in one)`);
  return yaml.load(match[1]);
}

function frontmatter(name, description) {
  if (!SKILL_NAME.test(name)) throw new Error(`skill name ${name} does not match ${SKILL_NAME}; rename the pack file`);
  if (description.length > 1024) throw new Error(`${name}: description is ${description.length} characters (v6 allows 1024)`);
  return `---\nname: ${name}\ndescription: ${JSON.stringify(description)}\n---\n\n`;
}

/** Pack support files (data, checklists, templates) a text names, as {file: [folder, contents]}. */
function namedFiles(text, pack) {
  const out = {};
  for (const [folder, target] of [['data', 'references'], ['checklists', 'references'], ['templates', 'assets']]) {
    for (const file of listFiles(path.join(pack, folder), '')) {
      if (text.includes(file)) out[`${target}/${file}`] = fs.readFileSync(path.join(pack, folder, file), 'utf8');
    }
  }
  return out;
}

function filesSection(files, extra = '') {
  const names = Object.keys(files).sort();
  const lines = ['## Files', '', CLI_NOTE];
  if (names.length) lines.push('', 'Pack files this skill uses are in its folder:', '', ...names.map((n) => `- \`${path.basename(n)}\`: \`${n}\``));
  if (extra) lines.push('', extra);
  return `${lines.join('\n')}\n`;
}

function taskTitle(text, stem) {
  const h1 = text.match(/^# (.+)$/m);
  return h1 ? h1[1].trim() : stem;
}

/** The first paragraph of the task's "## Purpose" section. */
function purpose(text) {
  const start = text.search(/^## Purpose\s*$/m);
  if (start < 0) return '';
  const after = text.slice(start).replace(/^## Purpose\s*\n/, '').trimStart();
  return oneLine(after.split(/\n\s*\n|\n## /)[0]);
}

function buildTask(pack, file, menu) {
  const stem = path.basename(file, '.md');
  const name = skillName(stem);
  const text = stripPowered(fs.readFileSync(path.join(pack, 'tasks', file), 'utf8'));
  const title = taskTitle(text, stem);
  const command = menu.get(file);
  const use = `Use when the user asks to ${title.toLowerCase()}${command ? ` (the data engineer's *${command.split(' ')[0]})` : ''}.`;
  const files = namedFiles(text, pack);
  const agentNote = /\*(create-doc|checklist)\b/.test(text)
    ? '`*create-doc` and `*checklist` are commands of the data engineer (the `bmad-data-engineer` skill); without it, fill the template or walk the checklist named here with the user.'
    : '';
  const body = `${text.trimEnd()}\n\n<!-- ${GENERATED} -->\n\n${filesSection(files, agentNote)}`;
  return { name, title, command, description: `${purpose(text)} ${use}`.trim(), files: { [`${name}/SKILL.md`]: frontmatter(name, `${purpose(text)} ${use}`.trim()) + body, ...prefix(name, files) } };
}

function prefix(name, files) {
  return Object.fromEntries(Object.entries(files).map(([rel, content]) => [`${name}/${rel}`, content]));
}

function buildWorkflow(pack, file, taskSkills) {
  const stem = path.basename(file, '.yaml');
  const name = skillName(stem);
  const source = fs.readFileSync(path.join(pack, 'workflows', file), 'utf8');
  const wf = yaml.load(source).workflow;
  const lines = [`# ${wf.name}`, '', `<!-- ${GENERATED} -->`, '', '## Overview', '', oneLine(wf.description), ''];
  const guide = wf.decision_guidance || {};
  if (guide.when_to_use) lines.push('Use it for:', '', ...guide.when_to_use.map((w) => `- ${w}`), '');
  if (guide.when_to_skip) lines.push('Skip it for:', '', ...guide.when_to_skip.map((w) => `- ${w}`), '');
  lines.push('## Steps', '', 'Work through the steps in order; a step with a condition runs only when it holds.', '');
  wf.sequence.forEach((step, i) => {
    const how = step.uses ? `run the \`${taskSkills.get(step.uses) || step.uses}\` skill` : step.action;
    lines.push(`${i + 1}. **${step.step}**${step.condition ? ` (only when ${step.condition})` : ''}: ${how}.`);
    if (step.creates) lines.push(`   Creates \`${step.creates}\`.`);
    if (step.notes) lines.push(`   ${oneLine(step.notes)}`);
  });
  if (wf.handoff_prompts) {
    lines.push('', '## Hand-off messages', '', ...Object.entries(wf.handoff_prompts).map(([k, v]) => `- ${k}: "${v}"`));
  }
  if (wf.flow_diagram) lines.push('', '## Flow', '', wf.flow_diagram.trimEnd());
  const files = namedFiles(source.replace(/uses: \S+/g, ''), pack);
  const body = `${lines.join('\n')}\n\n${filesSection(files)}`;
  const description = `${oneLine(wf.description)} Use when the user wants to take a dataset through ${wf.name.toLowerCase()} end to end.`;
  return { name, title: wf.name, description, files: { [`${name}/SKILL.md`]: frontmatter(name, description) + body, ...prefix(name, files) } };
}

function buildAgent(pack, file, taskSkills) {
  const def = agentYaml(path.join(pack, 'agents', file));
  const { agent, persona } = def;
  const name = skillName(agent.id);
  const menu = def.commands.map((entry) => {
    const [command, what] = Object.entries(entry)[0];
    const task = String(what).match(/Execute task (\S+\.md)/);
    let action = what;
    if (task && taskSkills.has(task[1])) action = `run the \`${taskSkills.get(task[1])}\` skill`;
    else if (task && CORE_TASKS[task[1]]) action = `${CORE_TASKS[task[1]]}${/with checklist (\S+)/.test(what) ? ` (\`${what.match(/with checklist (\S+)/)[1]}\`)` : ''}`;
    return `- \`${command}\`: ${action}`;
  });
  const rules = (def['activation-instructions'] || []).filter((r) => /^CRITICAL DATA RULE:/.test(r)).map((r) => `- ${r.replace(/^CRITICAL DATA RULE:\s*/, '')}`);
  const deps = def.dependencies || {};
  const files = {};
  for (const [folder, target] of [['data', 'references'], ['checklists', 'references'], ['templates', 'assets']]) {
    for (const dep of deps[folder] || []) {
      if (folder === 'data' && CORE_DATA.has(dep)) continue;
      const src = path.join(pack, folder, dep);
      if (!fs.existsSync(src)) throw new Error(`${file}: dependency ${folder}/${dep} is not in the pack`);
      files[`${target}/${dep}`] = fs.readFileSync(src, 'utf8');
    }
  }
  const body = [
    `# ${agent.name} — ${agent.title}`, '', `<!-- ${GENERATED} -->`, '',
    '## Overview', '',
    `You are ${agent.name} ${agent.icon}, the ${agent.title}. ${oneLine(persona.identity)}.`, '',
    `- Role: ${persona.role}`, `- Style: ${persona.style}`, `- Focus: ${persona.focus}`,
    ...(agent.customization ? [`- Always: ${agent.customization}`] : []), '',
    '## Principles', '', ...persona.core_principles.map((p) => `- ${p}`), '',
    ...(rules.length ? ['## Rules', '', ...rules, ''] : []),
    '## On Activation', '',
    `Greet the user as ${agent.name}, show the menu below as a numbered list, then wait for their choice. Match a request to the closest command; ask when none fits.`, '',
    '## Menu', '', ...menu, '',
    filesSection(files),
  ].join('\n');
  const description = `${agent.title} (${agent.name}): ${oneLine(agent.whenToUse)}. Use when the user asks to talk to ${agent.name} or for the data engineer agent.`;
  return {
    name, agent, persona, description,
    files: { [`${name}/SKILL.md`]: frontmatter(name, description) + body, ...prefix(name, files) },
  };
}

/** Menu codes for module-help.csv: initials of the title, made unique. */
function menuCodes(titles) {
  const used = new Set();
  return titles.map((title) => {
    const words = title.replace(/[^A-Za-z0-9 ]/g, ' ').split(/\s+/).filter((w) => w && !/^(a|an|the|to|of)$/i.test(w));
    let code = words.map((w) => w[0].toUpperCase()).join('').slice(0, 3) || 'X';
    for (let n = 2; used.has(code); n += 1) code = `${code.replace(/\d+$/, '')}${n}`;
    used.add(code);
    return code;
  });
}

/** Every file of the v6 module, {relative path: contents}, built from the v4 pack in `pack`. */
function buildModule(pack = PACK) {
  const config = yaml.load(fs.readFileSync(path.join(pack, 'config.yaml'), 'utf8'));
  const taskFiles = listFiles(path.join(pack, 'tasks'), '.md');
  const taskSkills = new Map(taskFiles.map((f) => [f, skillName(path.basename(f, '.md'))]));
  const agents = listFiles(path.join(pack, 'agents'), '.md').map((f) => buildAgent(pack, f, taskSkills));
  const menu = new Map();
  for (const f of listFiles(path.join(pack, 'agents'), '.md')) {
    for (const entry of agentYaml(path.join(pack, 'agents', f)).commands) {
      const [command, what] = Object.entries(entry)[0];
      const task = String(what).match(/Execute task (\S+\.md)/);
      if (task) menu.set(task[1], command);
    }
  }
  const tasks = taskFiles.map((f) => buildTask(pack, f, menu));
  const workflows = listFiles(path.join(pack, 'workflows'), '.yaml').map((f) => buildWorkflow(pack, f, taskSkills));
  const skills = [...agents.map((a) => ({ ...a, title: a.agent.title })), ...tasks, ...workflows];
  const seen = new Set();
  for (const s of skills) {
    if (seen.has(s.name)) throw new Error(`two pack files both become the skill ${s.name}; rename one`);
    seen.add(s.name);
  }

  const moduleName = config['short-title'] || config.name;
  const moduleYaml = {
    code: MODULE_CODE,
    name: moduleName,
    description: oneLine(config.description),
    module_version: String(config.version),
    default_selected: false,
    agents: agents.map((a) => ({
      code: a.name, name: a.agent.name, title: a.agent.title, icon: a.agent.icon, team: MODULE_CODE, description: oneLine(a.agent.whenToUse),
    })),
  };
  const codes = menuCodes(skills.map((s) => s.title));
  const rows = skills.map((s, i) => {
    const args = s.command && s.command.includes('{') ? `[${s.command.match(/\{(\w+)\}/)[1]}]` : '';
    return [moduleName, s.name, s.title, codes[i], s.description, '', args, 'anytime', '', '', 'false', '', ''].map(csvCell).join(',');
  });
  const files = {
    'module.yaml': `# ${GENERATED}\n${yaml.dump(moduleYaml, { lineWidth: -1, noRefs: true })}`,
    'module-help.csv': `${[MODULE_HELP_HEADER, ...rows].join('\n')}\n`,
  };
  for (const s of skills) Object.assign(files, s.files);
  return files;
}

/** Every file under `dir`, {relative path: contents}. */
function readTree(dir) {
  const out = {};
  const walk = (sub) => {
    for (const entry of fs.readdirSync(path.join(dir, sub), { withFileTypes: true })) {
      const rel = sub ? `${sub}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(rel);
      else out[rel] = fs.readFileSync(path.join(dir, rel), 'utf8');
    }
  };
  if (fs.existsSync(dir)) walk('');
  return out;
}

/** Paths that differ between a fresh build and `dir` (missing, extra or changed). */
function drift(dir = OUT, pack = PACK) {
  const want = buildModule(pack);
  const have = readTree(dir);
  return [...new Set([...Object.keys(want), ...Object.keys(have)])].filter((p) => want[p] !== have[p]).sort();
}

function write(dir = OUT, pack = PACK) {
  const files = buildModule(pack);
  fs.rmSync(dir, { recursive: true, force: true });
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), content);
  }
  return Object.keys(files).length;
}

if (require.main === module) {
  if (process.argv.includes('--check')) {
    const differ = drift();
    if (differ.length) {
      process.stderr.write(`bmad-module/ is out of date with expansion-pack/ (${differ.length} files: ${differ.join(', ')}).\nRun: node bmad_bridge/scripts/build-v6-module.js\n`);
      process.exitCode = 1;
    }
  } else {
    process.stdout.write(`wrote ${write()} files to ${path.relative(process.cwd(), OUT) || OUT}\n`);
  }
}

module.exports = { buildModule, drift, write, skillName, MODULE_CODE, OUT, PACK };
