'use strict';
/**
 * Is this subcommand on? Two sources, both named in the refusal so the user knows what to edit:
 *  - the subcommand's `enabled` in duckdb-cli-integration-config.yaml (cli_integration.commands.
 *    <command>.subcommands.<name>). The sidecar validates that file and tells us its path in
 *    `config.get`'s `files.cli`; it does not serve the commands section, so this module reads
 *    just that section of the same file.
 *  - the feature flags the subcommand (or an option of it) needs, as the sidecar resolved them
 *    (a flag whose dependency is off is off, with the reason).
 */
const fs = require('node:fs/promises');
const { BmadDataError } = require('../errors');

/** Flags each subcommand needs. doctor and status need none: they are how you find out. */
const COMMAND_FLAGS = Object.freeze({
  analyze: ['duckdb_analytics', 'duckdb_cli_integration'],
  query: ['duckdb_analytics', 'duckdb_cli_integration'],
  convert: ['duckdb_analytics', 'duckdb_cli_integration'],
  partition: ['duckdb_analytics', 'duckdb_cli_integration'],
  monitor: ['duckdb_monitoring', 'duckdb_cli_monitoring'],
  cleanup: ['duckdb_analytics'],
  benchmark: ['duckdb_analytics'],
  status: [],
  doctor: [],
});

/** Flags an option needs, per subcommand. */
const OPTION_FLAGS = Object.freeze({
  'analyze --monitor': ['duckdb_monitoring'],
});

/** The sidecar's flags map as a list of {name, enabled, reason, file, line}. */
function flagList(flags) {
  return Object.entries(flags || {}).map(([name, s]) => ({ name, ...(s || {}) }));
}

/** Line (1-based) of `key:` at or after line `from` in the YAML text, for a precise pointer. */
function lineOf(text, key, from = 0) {
  const lines = text.split('\n');
  for (let i = from; i < lines.length; i += 1) {
    if (new RegExp(`^\\s*${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*:`).test(lines[i])) return i + 1;
  }
  return null;
}

/**
 * Where the subcommand is switched off in the CLI config, or null when it is on (or absent:
 * a subcommand the file does not mention is not disabled by it).
 */
async function subcommandRefusal(cliPath, name) {
  if (!cliPath) return null;
  let text;
  try {
    text = await fs.readFile(cliPath, 'utf8');
  } catch {
    return null; // the sidecar reports a missing or unreadable file in its diagnostics
  }
  let doc;
  try {
    doc = require('js-yaml').load(text); // loaded when a gate reads the file, not by every command's start
  } catch {
    return null; // a YAML syntax error is the sidecar's CONFIG_INVALID to report
  }
  const commands = (doc && doc.cli_integration && doc.cli_integration.commands) || {};
  for (const [group, command] of Object.entries(commands)) {
    const sub = command && command.subcommands && command.subcommands[name];
    if (!sub) continue;
    const groupLine = lineOf(text, group);
    if (command.enabled === false) {
      return { key: `cli_integration.commands.${group}.enabled`, file: cliPath, line: lineOf(text, 'enabled', groupLine || 0) };
    }
    if (sub.enabled === false) {
      const subLine = lineOf(text, name, groupLine || 0);
      return { key: `cli_integration.commands.${group}.subcommands.${name}.enabled`, file: cliPath, line: lineOf(text, 'enabled', subLine || 0) };
    }
    return null;
  }
  return null;
}

function flagRefusal(flags, needed, what) {
  for (const name of needed) {
    const state = (flags || {})[name];
    if (state && state.enabled) continue;
    const reason = state ? state.reason : `no flag named '${name}' is declared in the feature flags files`;
    const where = state && state.file ? `${state.file}${state.line ? `:${state.line}` : ''}` : 'config/feature-flags.yaml';
    return new BmadDataError('FEATURE_DISABLED', `${what} needs feature '${name}', which is off: ${reason}`, {
      hint: `Set \`enabled: true\` for the flag named in the reason (${where}), then retry.`,
      details: { flag: name, file: state ? state.file : null, line: state ? state.line : null, reason },
    });
  }
  return null;
}

/** Throw FEATURE_DISABLED or COMMAND_DISABLED when `name` (with `options`) may not run. */
async function checkCommandEnabled(client, name, options = []) {
  const config = await client.request('config.get');
  // A broken pack file leaves its flags undeclared: report the file and line, not an undeclared flag.
  const broken = config.ok === false ? (config.diagnostics || []).find((d) => d.severity === 'error') : null;
  if (broken) {
    const where = `${broken.file}${broken.line ? `:${broken.line}` : ''}`;
    throw new BmadDataError('CONFIG_INVALID', `${where}: ${broken.message}`, {
      hint: broken.hint || 'Fix the file at this line; `bmad-data doctor` lists every problem.',
      details: { file: broken.file, line: broken.line, diagnostics: config.diagnostics.filter((d) => d.severity === 'error') },
    });
  }
  const off = await subcommandRefusal(config.files && config.files.cli, name);
  if (off) {
    throw new BmadDataError('COMMAND_DISABLED', `command '${name}' is disabled in ${off.file}${off.line ? `:${off.line}` : ''}`, {
      hint: `Set \`${off.key}: true\` in that file, then retry.`,
      details: { flag: off.key, file: off.file, line: off.line, reason: `${off.key} is false` },
    });
  }
  const err = flagRefusal(config.flags, COMMAND_FLAGS[name] || [], `command '${name}'`);
  if (err) throw err;
  for (const option of options) {
    const optErr = flagRefusal(config.flags, OPTION_FLAGS[`${name} --${option}`] || [], `option '--${option}' of '${name}'`);
    if (optErr) throw optErr;
  }
}

module.exports = { checkCommandEnabled, flagList, COMMAND_FLAGS, OPTION_FLAGS, subcommandRefusal, lineOf };
