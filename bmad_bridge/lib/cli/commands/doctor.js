'use strict';
/**
 * `bmad-data doctor`: Node, Python, the sidecar and DuckDB, config validity, feature flags,
 * memory and spill space. Each check says ok / warn / fail and, when not ok, the fix.
 */
const { execFile } = require('node:child_process');
const { promisify } = require('node:util');
const { BmadDataError } = require('../../errors');
const { runCommand } = require('../session');
const { formatBytes } = require('../format');
const { flagList, COMMAND_FLAGS } = require('../gates');
const { managedVenv } = require('../../locate');

const run = promisify(execFile);
const MIN_SPILL_FREE = 1e9;
const GOOD_SPILL_FREE = 10e9;

function register(program) {
  program
    .command('doctor')
    .description('Check Python, the sidecar, DuckDB, config validity, feature flags, memory and spill space')
    .action(async (opts, cmd) => {
      await runCommand('doctor', cmd.optsWithGlobals(), handle, { start: false });
    });
}

async function checkPython(client) {
  try {
    const { stdout, stderr } = await run(client.python, ['--version'], { timeout: 10000 });
    const version = (stdout || stderr).trim();
    const [, major, minor] = version.match(/(\d+)\.(\d+)/) || [];
    if (Number(major) === 3 && Number(minor) >= 11) return ok('python', `${version} (${client.python}, from ${client.pythonSource})`);
    return fail('python', `${version} at ${client.python} is too old; the sidecar needs Python >= 3.11`, `Install Python >= 3.11, then run \`${SETUP}\` (or \`${SETUP} --python <path to it>\`)`);
  } catch (err) {
    return fail('python', `cannot run ${client.python} (${client.pythonSource}): ${err.message.split('\n')[0]}`, `Install Python >= 3.11, then run \`${SETUP}\`; or set BMAD_DATA_PYTHON to a Python >= 3.11 that has the sidecar`);
  }
}

const SETUP = 'npx bmad-data setup';

/** The fix for a sidecar that did not start: a Python without the sidecar needs setup. */
function sidecarFix(err) {
  const tail = String((err.details && err.details.stderr_tail) || '');
  if (/No module named '?sidecar/.test(tail)) {
    return `The sidecar is not installed for this Python. Run \`${SETUP}\` (it creates ${managedVenv().dir}); or \`pip install\` the bmad-data-sidecar wheel and put its bmad-data-sidecar on PATH; or set BMAD_DATA_PYTHON to a Python that has it`;
  }
  return err.hint || 'Run with --verbose to see its log';
}

const ok = (name, message) => ({ name, status: 'ok', message, fix: '' });
const warn = (name, message, fix) => ({ name, status: 'warn', message, fix });
const fail = (name, message, fix) => ({ name, status: 'fail', message, fix });

function configCheck(diagnostics) {
  const errors = diagnostics.filter((d) => d.severity === 'error');
  const warnings = diagnostics.filter((d) => d.severity === 'warning');
  const where = (d) => `${d.file}${d.line ? `:${d.line}` : ''}${d.column ? `:${d.column}` : ''}: ${d.message}`;
  if (errors.length) return fail('config', `${errors.length} error(s): ${errors.slice(0, 3).map(where).join('; ')}`, errors[0].hint || 'Fix the file and line named; `bmad-data status` shows the config in force');
  if (warnings.length) return warn('config', `valid, with ${warnings.length} warning(s): ${warnings.slice(0, 2).map(where).join('; ')}`, warnings[0].hint || 'Remove or rename the keys named');
  return ok('config', 'all config files valid');
}

function flagsCheck(flags) {
  const list = flagList(flags);
  const needed = new Set(Object.values(COMMAND_FLAGS).flat());
  const off = list.filter((f) => !f.enabled && needed.has(f.name));
  if (off.length === 0) return ok('flags', `${list.filter((f) => f.enabled).length} of ${list.length} feature flags on; every command's flags are on`);
  const first = off[0];
  return warn('flags', `off: ${off.map((f) => `${f.name}${f.reason ? ` (${f.reason})` : ''}`).join(', ')}`,
    `Set features.${first.name}.enabled: true in ${first.file || 'config/feature-flags.yaml'} (and its dependencies) to use the commands that need it`);
}

function spaceChecks(res, init) {
  const checks = [];
  const free = res.temp_free_bytes;
  const dir = res.temp_directory;
  if (typeof free !== 'number') checks.push(warn('spill', `free space of ${dir} unknown`, 'Point the profile\'s temp_directory at a local disk'));
  else if (free < MIN_SPILL_FREE) checks.push(fail('spill', `only ${formatBytes(free, { both: true })} free in ${dir}`, 'Free disk space, or set spilling_config.spill_directory to a disk with room'));
  else if (free < GOOD_SPILL_FREE) checks.push(warn('spill', `${formatBytes(free, { both: true })} free in ${dir}; big sorts and joins may hit SPILL_LIMIT`, 'Free disk space or move the spill directory to a larger disk'));
  else checks.push(ok('spill', `${formatBytes(free, { both: true })} free in ${dir}`));
  const avail = res.available_memory_bytes;
  const budget = init && init.settings ? init.settings.memory_budget_bytes : null;
  if (typeof avail === 'number' && typeof budget === 'number' && avail < budget) {
    checks.push(warn('memory', `available memory ${formatBytes(avail)} is below the budget ${formatBytes(budget)}`, 'Close other programs, or lower memory_limit in the profile'));
  } else if (typeof avail === 'number') {
    checks.push(ok('memory', `${formatBytes(avail, { both: true })} available${typeof budget === 'number' ? `, budget ${formatBytes(budget, { both: true })}` : ''}`));
  }
  return checks;
}

const MARKS = { ok: ['✅', 'green'], warn: ['⚠️ ', 'yellow'], fail: ['❌', 'red'] };

/** One check as the lines a person reads: mark, name, message, and the fix when not ok. */
function checkText(check, paint) {
  const [mark, colour] = MARKS[check.status];
  const head = paint[colour](`${mark} ${check.name}: ${check.message}`);
  return check.status === 'ok' ? head : `${head}\n   Fix: ${check.fix}`;
}

async function handle({ client, reporter }) {
  reporter.info('🩺 Checking the bmad-data setup...');
  const checks = [ok('node', `Node ${process.version}`)];
  const python = await checkPython(client);
  checks.push(python);
  let init = null;
  if (python.status !== 'fail') {
    try {
      init = await client.start();
      checks.push(ok('sidecar', `${init.server?.name ?? 'sidecar'} ${init.server?.version ?? ''}, DuckDB ${init.duckdb_version} (Python from ${client.pythonSource})`));
    } catch (err) {
      checks.push(fail('sidecar', `the sidecar did not start: ${err.code}: ${err.message}`, sidecarFix(err)));
      if (err.code === 'CONFIG_INVALID') checks.push(configCheck(err.details.diagnostics || []));
    }
  }
  if (init) {
    const validation = await client.request('config.validate');
    checks.push(configCheck(validation.diagnostics || []));
    const config = await client.request('config.get');
    checks.push(flagsCheck(config.flags));
    checks.push(...spaceChecks(await client.request('system.resources'), init));
  }
  // The checks are doctor's result: stdout (one `check` line each in JSON mode).
  for (const check of checks) {
    if (reporter.json) reporter.emit('check', check);
    else reporter.print(checkText(check, reporter.out));
  }
  const failed = checks.filter((c) => c.status === 'fail');
  if (failed.length) {
    throw new BmadDataError('CHECKS_FAILED', `${failed.length} check(s) failed: ${failed.map((c) => c.name).join(', ')}`, { hint: failed[0].fix, details: { checks } });
  }
  reporter.result('doctor', { checks }, (d, r) => r.print(r.out.green('All checks passed')));
}

module.exports = { register, configCheck, flagsCheck };
