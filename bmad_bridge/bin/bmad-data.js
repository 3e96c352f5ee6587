#!/usr/bin/env node
'use strict';
require('../lib/cli/main').main(process.argv).catch((err) => {
  process.stderr.write(`bmad-data: internal error: ${err && err.stack ? err.stack : err}\n`);
  process.exitCode = 1;
});
