'use strict';
/**
 * Preloaded into a CLI child (NODE_OPTIONS=--require) by tests that want any process warning,
 * such as MaxListenersExceededWarning, to be a failure: it prints the warning and exits 70.
 */
process.on('warning', (warning) => {
  process.stderr.write(`warning turned into an error: ${warning.name}: ${warning.message}\n`);
  process.exit(70);
});
