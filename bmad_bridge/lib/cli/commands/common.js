'use strict';
/** Small helpers shared by the subcommands. */
const { InvalidArgumentError } = require('commander');

/** Commander parser for whole numbers >= 0. */
function parseInteger(value) {
  if (!/^\d+$/.test(String(value).trim())) throw new InvalidArgumentError('expected a whole number.');
  return Number.parseInt(value, 10);
}

/** Long names of the options the user actually passed on the command line (not defaults). */
function passedOptions(cmd) {
  return cmd.options
    .filter((o) => cmd.getOptionValueSource(o.attributeName()) === 'cli')
    .map((o) => o.long.replace(/^--/, ''));
}

module.exports = { parseInteger, passedOptions };
