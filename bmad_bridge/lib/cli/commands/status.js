'use strict';
/** `bmad-data status`: the sidecar, the machine's resources, the settings in force and the flags. */
const { runCommand } = require('../session');
const { renderTable, formatBytes, cellText } = require('../format');
const { flagList } = require('../gates');

function register(program) {
  program
    .command('status')
    .description('Show the sidecar, DuckDB, resources, settings (with their sources) and feature flags')
    .action(async (opts, cmd) => {
      await runCommand('status', cmd.optsWithGlobals(), handle, { gate: false });
    });
}

async function handle({ client, reporter, init }) {
  const resources = await client.request('system.resources');
  const config = await client.request('config.get');
  const data = {
    server: init.server,
    protocol_version: init.protocol_version,
    duckdb_version: init.duckdb_version,
    resources,
    settings: config.settings,
    sources: config.sources,
    flags: config.flags,
  };
  reporter.result('status', data, (d, r) => render(d, r));
}

const RESOURCE_SIZES = ['total_memory_bytes', 'available_memory_bytes', 'cgroup_memory_limit_bytes', 'temp_free_bytes'];

function render(d, r) {
  const c = r.out;
  r.print(c.green('🦆 bmad-data status'));
  r.print(`Sidecar: ${c.cyan(`${d.server?.name ?? 'sidecar'} ${d.server?.version ?? ''}`)}  protocol ${d.protocol_version ?? 'n/a'}  DuckDB ${c.cyan(d.duckdb_version ?? 'n/a')}`);
  const res = Object.entries(d.resources || {}).map(([k, v]) => [k, RESOURCE_SIZES.includes(k) ? formatBytes(v, { both: true }) : cellText(v)]);
  r.print('\nResources');
  r.print(renderTable(['resource', 'value'], res, { paint: c.bold, maxCell: 60 }));
  r.print('\nSettings');
  r.print(renderTable(['setting', 'value', 'source'], settingRows(d.settings, d.sources), { paint: c.bold, maxCell: 50 }));
  r.print('\nFeature flags');
  r.print(renderTable(['flag', 'enabled', 'why'], flagList(d.flags).map((f) => [f.name, f.enabled ? 'yes' : 'no', f.reason || '']), { paint: c.bold, maxCell: 60 }));
}

/** Settings as rows; each value may be plain or {value, source}; sources may be a parallel map. */
function settingRows(settings = {}, sources = {}) {
  return Object.entries(settings || {}).map(([name, v]) => {
    const isBoxed = v !== null && typeof v === 'object' && 'value' in v;
    const value = isBoxed ? v.value : v;
    const source = isBoxed ? v.source : (sources || {})[name];
    return [name, cellText(value), source === undefined ? '' : cellText(source)];
  });
}

module.exports = { register, settingRows };
