'use strict';
/**
 * What the monitor tests share: a pack copy whose duckdb_memory alert levels are lowered (so a real
 * query fires a real alert, as tests/test_monitor_live.py does on the Python side), a query that
 * holds DuckDB memory for a few seconds, and a client started on that pack.
 */
const fs = require('node:fs');
const path = require('node:path');
const { packCopy, startClient } = require('./helpers');

/** A GROUP BY of 2M keys: DuckDB's hash table holds tens of MB of managed memory for seconds. */
const HEAVY = 'SELECT count(*) AS n FROM (SELECT i % 2000000 AS k, sum(i) FROM range(40000000) t(i) GROUP BY k)';

/** A pack copy whose duckdb_memory info/warning levels are 1% and 2% of DuckDB's limit. */
function lowWarningPack() {
  const dir = packCopy();
  const file = path.join(dir, 'data', 'resource-thresholds-config.yaml');
  const text = fs.readFileSync(file, 'utf8');
  const lowered = text.replace('    info: 50\n    warning: 75\n', '    info: 1\n    warning: 2\n');
  if (lowered === text) throw new Error(`${file} no longer has the duckdb_memory levels this fixture lowers`);
  fs.writeFileSync(file, lowered);
  return dir;
}

/** The environment of a sidecar on `pack`: one job at a time, a 1 GB job memory limit. */
function monitorEnv(pack) {
  return { ...process.env, BMAD_DATA_CONFIG_DIR: pack, BMAD_DATA_MEMORY_LIMIT: '1GB', BMAD_DATA_MAX_CONCURRENT_JOBS: '1' };
}

/** A started client on a lowered-warning pack. */
function startLowWarningClient() {
  return startClient({ env: monitorEnv(lowWarningPack()) });
}

module.exports = { HEAVY, lowWarningPack, monitorEnv, startLowWarningClient };
