'use strict';
/**
 * `bmad-data monitor`: samples the machine's memory and spill space every --interval seconds.
 * Alerts against thresholds and the web dashboard arrive with the monitoring issue (`monitor.*`).
 */
const { BmadDataError } = require('../../errors');
const { runCommand } = require('../session');
const { formatBytes } = require('../format');
const { passedOptions, parseAtLeast, parseSeconds } = require('./common');

function register(program) {
  program
    .command('monitor')
    .description('Sample memory and spill space every --interval seconds (Ctrl+C stops)')
    .option('-i, --interval <seconds>', 'seconds between samples (at least 0.1, e.g. 5 or 0.5)', parseSeconds(0.1), 5)
    .option('-n, --count <n>', 'stop after this many samples (at least 1); without it, sample until Ctrl+C',
      parseAtLeast(1, 'omit --count to sample until Ctrl+C'))
    .option('-w, --web', 'web dashboard (arrives with the monitoring issue)')
    .action(async (opts, cmd) => {
      await runCommand('monitor', cmd.optsWithGlobals(), (ctx) => handle(ctx, opts), { options: passedOptions(cmd) });
    });
}

/** Wait `ms`, or less if `signal` aborts; the abort listener goes when the wait ends, so none pile up. */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    const onAbort = () => { clearTimeout(timer); resolve(); };
    const timer = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(); }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

async function handle({ client, reporter, signal }, opts) {
  if (opts.web) {
    throw new BmadDataError('NOT_AVAILABLE', 'the web dashboard is not wired yet: it arrives with the monitoring issue', {
      hint: 'Run `bmad-data monitor` without --web for samples in the terminal.',
    });
  }
  reporter.info(`📊 Monitoring every ${opts.interval}s${opts.count ? ` for ${opts.count} samples` : ' (Ctrl+C to stop)'}...`);
  for (let n = 1; !signal.aborted && (!opts.count || n <= opts.count); n += 1) {
    const res = await client.request('system.resources', {}, { signal });
    const sample = {
      at: new Date().toISOString(),
      available_memory_bytes: res.available_memory_bytes,
      total_memory_bytes: res.total_memory_bytes,
      cgroup_memory_limit_bytes: res.cgroup_memory_limit_bytes ?? null,
      temp_free_bytes: res.temp_free_bytes,
    };
    if (reporter.json) reporter.emit('sample', { command: 'monitor', ...sample });
    else {
      const used = res.total_memory_bytes - res.available_memory_bytes;
      reporter.print(`${sample.at}  memory used ${formatBytes(used)} of ${formatBytes(res.total_memory_bytes)}  spill disk free ${formatBytes(res.temp_free_bytes)}`);
    }
    if (!opts.count || n < opts.count) await sleep(opts.interval * 1000, signal);
  }
  reporter.result('monitor', { stopped: signal.aborted ? 'interrupted' : 'count reached' }, (d, r) => r.success('Monitoring stopped'));
}

module.exports = { register };
