'use strict';
/** `bmad-data analyze <dataset>`: profile a CSV/Parquet/JSON file, glob or directory. */
const { Option } = require('commander');
const { runCommand } = require('../session');
const { renderAnalysis } = require('./render');
const { passedOptions, parseInteger, parseAtLeast } = require('./common');
const { formatBytes } = require('../format');

function register(program) {
  program
    .command('analyze')
    .description('Profile a dataset: rows, size, and per column type, nulls, distinct, min, max, mean, std')
    .argument('<dataset>', 'a CSV, Parquet or JSON file, a glob, or a directory')
    .option('-m, --memory-limit <size>', 'memory budget for the analysis, e.g. 4GB or 4GiB')
    .addOption(new Option('-o, --output <format>', 'how to print the result').choices(['table', 'json', 'csv']).default('table'))
    .option('--monitor', 'show memory and spill while the analysis runs, and the peaks after')
    .option('--sample-rows <n>', 'rows to sample for the estimated statistics', parseInteger)
    .option('--exact', 'compute exact statistics (reads everything; slow on big data)')
    .option('--timeout <ms>', 'stop the analysis after this many milliseconds (default: timeout_threshold in resource-thresholds-config.yaml)', parseAtLeast(1))
    .action(async (dataset, opts, cmd) => {
      const overrides = opts.memoryLimit ? { memory_limit: opts.memoryLimit } : {};
      await runCommand('analyze', cmd.optsWithGlobals(), (ctx) => handle(ctx, dataset, opts), {
        overrides, options: passedOptions(cmd),
      });
    });
}

async function handle({ client, reporter, signal }, dataset, opts) {
  reporter.info('🔍 Starting data analysis...');
  reporter.info(`📈 Analyzing dataset: ${dataset}`);
  const params = { path: dataset };
  if (opts.sampleRows !== undefined) params.sample_rows = opts.sampleRows;
  if (opts.exact) params.exact = true;
  if (opts.timeout !== undefined) params.timeout_ms = opts.timeout;
  const peaks = { rss: 0, spill: 0 };
  const show = reporter.startProgress('analyze', `Analyzing ${dataset}`);
  const onProgress = (value) => {
    peaks.rss = Math.max(peaks.rss, value.rss_bytes || 0);
    peaks.spill = Math.max(peaks.spill, value.spill_bytes || 0);
    show(value);
  };
  const started = Date.now();
  const result = await client.request('dataset.analyze', params, { signal, onProgress });
  const elapsedMs = Date.now() - started;
  reporter.result('analyze', result, (data, r) => {
    renderAnalysis({ ...data, stats: { elapsed_ms: elapsedMs, ...(data.stats || {}) } }, opts.output, r);
    if (opts.monitor) {
      r.detail(`Peak memory seen: RSS ${formatBytes(peaks.rss, { both: true })}, spill ${formatBytes(peaks.spill, { both: true })}`);
    }
    r.success('Analysis completed successfully');
  });
}

module.exports = { register };
