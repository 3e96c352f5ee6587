#!/usr/bin/env node
'use strict';
const { main } = require('../lib/cli/main');

main(process.argv).catch((err) => {
  // Only a bug gets here (every command reports its own failures); --json still gets JSON.
  if (process.argv.includes('--json')) {
    const { Reporter } = require('../lib/cli/output');
    const { asBmadError } = require('../lib/cli/session');
    new Reporter({ json: true }).fail('bmad-data', asBmadError(err));
  } else {
    process.stderr.write(`bmad-data: internal error: ${err && err.stack ? err.stack : err}\n`);
  }
  process.exitCode = 1;
});
