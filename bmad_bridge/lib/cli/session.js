'use strict';
/**
 * One CLI command's life: start the sidecar, check the command is enabled, run the handler,
 * report the outcome in BMad style or as JSON lines, close the sidecar, set the exit code.
 * Ctrl+C cancels the running request (`$/cancelRequest`); a second Ctrl+C exits at once.
 * The sidecar is the user's shared daemon (started when none runs) unless `--no-daemon` or
 * BMAD_DATA_NO_DAEMON=1 asks for a private one (lib/daemon.js).
 */
const { SidecarClient } = require('../client');
const { BmadDataError, exitCodeFor } = require('../errors');
const { Reporter } = require('./output');
const { checkCommandEnabled } = require('./gates');

/** Global options shared by every subcommand (see main.js). */
function initializeParams(globals, extraOverrides = {}) {
  const params = {};
  if (globals.configDir) params.config_dir = globals.configDir;
  if (globals.profile) params.profile = globals.profile;
  const overrides = { ...extraOverrides };
  if (Object.keys(overrides).length > 0) params.overrides = overrides;
  return params;
}

function asBmadError(error) {
  if (error instanceof BmadDataError) return error;
  return new BmadDataError('INTERNAL', error && error.message ? error.message : String(error), {
    hint: 'This is a bug in bmad-data; please report it with the command you ran.',
    details: { stack: error && error.stack ? String(error.stack).split('\n').slice(0, 5) : [] },
  });
}

/**
 * Run `handler({client, reporter, init, signal})` for subcommand `name`.
 * @param {string} name               subcommand, as in the integration config
 * @param {object} globals            the program's global options (json, configDir, profile, verbose)
 * @param {Function} handler
 * @param {object} [options]
 * @param {object} [options.overrides]  initialize overrides (e.g. memory_limit)
 * @param {string[]} [options.options]  option names the user passed (checked against the config)
 * @param {boolean} [options.gate]      check the integration config and flags (default true)
 * @param {boolean} [options.start]     start and initialize the sidecar first (default true);
 *                                      false hands the handler an unstarted client (doctor)
 * @param {Function} [options.validate] checks the arguments before the sidecar starts; what it
 *                                      throws is reported like any other failure
 */
async function runCommand(name, globals, handler, { overrides = {}, options = [], gate = true, start = true, validate } = {}) {
  const reporter = new Reporter({ json: Boolean(globals.json) });
  const client = new SidecarClient({ initialize: initializeParams(globals, overrides), restart: { maxRestarts: 0 }, daemon: globals.daemon !== false });
  client.on('protocol-error', (err) => reporter.warn(`protocol error from the sidecar: ${err.message}`, { code: err.code, details: err.details }));
  client.on('error', (err) => reporter.warn(`sidecar client error: ${err.message}`));
  if (globals.verbose || /^debug$/i.test(process.env.BMAD_DATA_LOG_LEVEL || '')) client.on('stderr', (chunk) => process.stderr.write(chunk));
  client.on('config/error', (params) => reporter.warn('the config changed and is now invalid; the last good config stays in force', { diagnostics: params && params.diagnostics }));

  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts += 1;
    if (interrupts > 1) process.exit(130);
    reporter.warn('Cancelling... (press Ctrl+C again to quit at once)');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);

  let exitCode = 0;
  try {
    if (validate) validate();
    const init = start ? await client.start() : null;
    if (start && gate) await checkCommandEnabled(client, name, options);
    await handler({ client, reporter, init, signal: controller.signal });
  } catch (error) {
    const err = asBmadError(error);
    reporter.fail(name, err);
    exitCode = exitCodeFor(err);
  } finally {
    reporter.stopProgress();
    process.removeListener('SIGINT', onSigint);
    process.removeListener('SIGTERM', onSigint);
    await client.close().catch(() => {});
  }
  process.exitCode = exitCode;
  return exitCode;
}

module.exports = { runCommand, initializeParams, asBmadError };
