'use strict';
/**
 * The `bmad-data` program: global options and the subcommands of the pack's
 * duckdb-cli-integration-config.yaml (analyze, query, monitor, cleanup, benchmark, status)
 * plus doctor. Exit codes: lib/errors.js EXIT_CODES, documented in docs/bmad-integration.md.
 */
const { Command, CommanderError } = require('commander');
const { EXIT_CODES } = require('../errors');
const { version } = require('../../package.json');

const COMMANDS = ['analyze', 'query', 'monitor', 'cleanup', 'benchmark', 'status', 'doctor', 'setup'];

/** Build the commander program (tests introspect it to check the pack's commands exist). */
function buildProgram() {
  const program = new Command('bmad-data');
  program
    .description('Memory-safe DuckDB for BMad: queries and dataset analysis through a supervised sidecar')
    .version(version)
    .option('--json', 'print JSON lines only (for agents and scripts)')
    .option('-c, --config-dir <dir>', 'expansion pack folder holding the config (default: the repo\'s expansion-pack/, or BMAD_DATA_CONFIG_DIR)')
    .option('-p, --profile <name>', 'memory profile from duckdb-memory-config-templates.yaml (default: auto)')
    .option('-v, --verbose', 'show the sidecar\'s log on stderr')
    .showSuggestionAfterError(true)
    .exitOverride();
  for (const name of COMMANDS) {
    require(`./commands/${name}`).register(program);
  }
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

async function main(argv = process.argv) {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
      process.exitCode = 0;
    } else {
      // commander already printed the message to stderr
      const json = argv.includes('--json');
      if (json) process.stdout.write(`${JSON.stringify({ type: 'error', command: null, error: { code: 'USAGE', message: err.message, hint: 'Run `bmad-data --help`.' } })}\n`);
      process.exitCode = EXIT_CODES.USAGE;
    }
  }
}

module.exports = { buildProgram, main, COMMANDS };
