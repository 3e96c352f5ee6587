'use strict';
/**
 * The `bmad-data` program: global options and the subcommands of the pack's
 * duckdb-cli-integration-config.yaml (analyze, query, monitor, cleanup, benchmark, status)
 * plus convert, partition and doctor. Exit codes: lib/errors.js EXIT_CODES, documented in docs/bmad-integration.md.
 */
const { Command, CommanderError } = require('commander');
const { BmadDataError, EXIT_CODES } = require('../errors');
const { Reporter } = require('./output');
const { version } = require('../../package.json');

const COMMANDS = ['analyze', 'query', 'convert', 'partition', 'monitor', 'cleanup', 'benchmark', 'status', 'doctor', 'setup', 'daemon'];

/**
 * Build the commander program (tests introspect it to check the pack's commands exist).
 * With `json`, commander prints no `error:` line of its own: main() reports the usage error
 * as the one JSON error line.
 */
function buildProgram({ json = false } = {}) {
  const program = new Command('bmad-data');
  program
    .description('Memory-safe DuckDB for BMad: queries and dataset analysis through a supervised sidecar')
    .version(version)
    .option('--json', 'print JSON lines only (for agents and scripts)')
    .option('-c, --config-dir <dir>', 'expansion pack folder holding the config (default: BMAD_DATA_CONFIG_DIR, else the repo\'s expansion-pack/)')
    .option('-p, --profile <name>', 'memory profile from duckdb-memory-config-templates.yaml (default: auto)')
    .option('-v, --verbose', 'show the sidecar\'s log on stderr')
    .option('--no-daemon', 'run a private sidecar for this command instead of the shared daemon (env BMAD_DATA_NO_DAEMON=1)')
    .showSuggestionAfterError(true)
    .exitOverride();
  if (json) program.configureOutput({ outputError: () => {}, writeErr: () => {} });
  for (const name of COMMANDS) {
    require(`./commands/${name}`).register(program);
  }
  for (const cmd of program.commands) {
    cmd.exitOverride((err) => {
      err.command = cmd.name(); // which subcommand's arguments were wrong, for the error line
      throw err;
    });
  }
  return program;
}

const QUIET_EXITS = new Set(['commander.helpDisplayed', 'commander.version']);

/** A commander parse failure as the CLI's USAGE error (the same shape as every other error). */
function usageError(err) {
  const command = err.command || null;
  // 'commander.help' is the help commander shows (on stderr) when no command is given.
  const message = err.code === 'commander.help' ? 'no command given' : String(err.message).replace(/^error: /, '');
  return new BmadDataError('USAGE', message, {
    hint: command ? `Run \`bmad-data ${command} --help\` for its arguments and options.` : 'Run `bmad-data --help` for the commands.',
    details: { reason: err.code },
  });
}

async function main(argv = process.argv) {
  const json = argv.includes('--json');
  const program = buildProgram({ json });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    if (QUIET_EXITS.has(err.code)) {
      process.exitCode = 0;
      return;
    }
    // In human mode commander has printed its `error:` line; JSON mode gets one JSON error line.
    const error = usageError(err);
    if (json) new Reporter({ json: true }).fail(err.command || 'bmad-data', error);
    else if (error.hint) process.stderr.write(`${error.hint}\n`);
    process.exitCode = EXIT_CODES.USAGE;
  }
}

module.exports = { buildProgram, main, COMMANDS };
