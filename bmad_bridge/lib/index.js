'use strict';
/** Public API of the bridge: the sidecar client and its error class. */
const { SidecarClient } = require('./client');
const { BmadDataError, EXIT_CODES, exitCodeFor } = require('./errors');

module.exports = { SidecarClient, BmadDataError, EXIT_CODES, exitCodeFor };
