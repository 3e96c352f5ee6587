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
    config_dir: config.config_dir,
    profile: config.profile,
    resources,
    settings: config.settings,
    flags: config.flags,
    diagnostics: config.diagnostics,
  };
  reporter.result('status', data, (d, r) => render(d, r));
}

const RESOURCE_SIZES = ['total_memory_bytes', 'available_memory_bytes', 'cgroup_memory_limit_bytes', 'temp_free_bytes'];

function render(d, r) {
  const c = r.out;
  r.print(c.green('🦆 bmad-data status'));
  r.print(`Config: ${c.cyan(d.config_dir ?? 'n/a')}  profile ${c.cyan(d.profile ?? 'n/a')}`);
  r.print(`Sidecar: ${c.cyan(`${d.server?.name ?? 'sidecar'} ${d.server?.version ?? ''}`)}  protocol ${d.protocol_version ?? 'n/a'}  DuckDB ${c.cyan(d.duckdb_version ?? 'n/a')}`);
  const res = Object.entries(d.resources || {}).map(([k, v]) => [k, RESOURCE_SIZES.includes(k) ? formatBytes(v, { both: true }) : cellText(v)]);
  r.print('\nResources');
  r.print(renderTable(['resource', 'value'], res, { paint: c.bold, maxCell: 60 }));
  r.print('\nSettings');
  r.print(renderTable(['setting', 'value', 'source'], settingRows(d.settings), { paint: c.bold, maxCell: 50 }));
  r.print('\nFeature flags');
  r.print(renderTable(['flag', 'enabled', 'why'], flagList(d.flags).map((f) => [f.name, f.enabled ? 'yes' : 'no', f.reason || '']), { paint: c.bold, maxCell: 60 }));
}

/** Resolved settings as [name, value, source] rows; sizes (`*_bytes`) shown in both units. */
function settingRows(settings = {}) {
  const sources = settings.sources || {};
  return Object.entries(settings)
    .filter(([name]) => name !== 'sources' && name !== 'thresholds')
    .map(([name, v]) => [name, name.endsWith('_bytes') ? formatBytes(v, { both: true }) : cellText(v), cellText(sources[name] ?? '')]);
}

module.exports = { register, settingRows };
