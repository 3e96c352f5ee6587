'use strict';
/** Small helpers shared by the subcommands. */
const { InvalidArgumentError } = require('commander');

/** Commander parser for whole numbers >= 0. */
function parseInteger(value) {
  if (!/^\d+$/.test(String(value).trim())) throw new InvalidArgumentError('expected a whole number.');
  return Number.parseInt(value, 10);
}

/**
 * Commander parser for whole numbers >= `min`; `instead` says what to do rather than pass less.
 *   parseAtLeast(1, 'omit --count to sample until Ctrl+C')('0') -> InvalidArgumentError
 */
function parseAtLeast(min, instead = '') {
  return (value) => {
    const n = parseInteger(value);
    if (n < min) throw new InvalidArgumentError(`expected a whole number of at least ${min}${instead ? `; ${instead}` : ''}.`);
    return n;
  };
}

/** Commander parser for whole numbers from `min` to `max`: parseBetween(0, 10)('11') -> InvalidArgumentError. */
function parseBetween(min, max) {
  return (value) => {
    const n = parseInteger(value);
    if (n < min || n > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}.`);
    return n;
  };
}

/** Commander parser for a number of seconds >= `min` (decimals allowed: 0.5). */
function parseSeconds(min) {
  return (value) => {
    const text = String(value).trim();
    const n = Number(text);
    if (!/^\d+(\.\d+)?$/.test(text) || n < min) throw new InvalidArgumentError(`expected a number of seconds of at least ${min}, e.g. 5 or 0.5.`);
    return n;
  };
}

/** The `timeout_ms` and `settings` of a dataset method from --timeout and --memory-limit. */
function dataParams(opts) {
  const params = {};
  if (opts.timeout !== undefined) params.timeout_ms = opts.timeout;
  if (opts.memoryLimit) params.settings = { memory_limit: opts.memoryLimit };
  return params;
}

/** Long names of the options the user actually passed on the command line (not defaults). */
function passedOptions(cmd) {
  return cmd.options
    .filter((o) => cmd.getOptionValueSource(o.attributeName()) === 'cli')
    .map((o) => o.long.replace(/^--/, ''));
}

module.exports = { parseInteger, parseAtLeast, parseBetween, parseSeconds, passedOptions, dataParams };
