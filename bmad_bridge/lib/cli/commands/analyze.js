'use strict';
/** `bmad-data analyze <dataset>`: profile a CSV/Parquet/JSON file, glob or directory. */
const { Option, InvalidArgumentError } = require('commander');
const { runCommand } = require('../session');
const { renderAnalysis } = require('./render');
const { passedOptions, parseInteger, parseAtLeast } = require('./common');
const { formatBytes } = require('../format');
const { cliHint, flagsOf } = require('../hints');

/**
 * Commander collector for `--csv key=value`: the value is JSON when it parses as JSON (true,
 * false, 3, "0"), else the text as given; the sidecar checks the key and the value's type.
 *   parseCsvOption('null_padding=true', {}) -> {null_padding: true}
 *   parseCsvOption('nullstr=NA', {}) -> {nullstr: 'NA'}
 */
function parseCsvOption(text, previous = {}) {
  const m = /^([A-Za-z_]+)=(.*)$/s.exec(String(text));
  if (!m) throw new InvalidArgumentError('expected key=value, e.g. --csv null_padding=true or --csv nullstr=NA.');
  let value = m[2];
  try { value = JSON.parse(m[2]); } catch { /* plain text */ }
  return { ...previous, [m[1]]: value };
}

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
    .option('--union-by-name', "read every file's columns by name (files whose schemas differ), as read_parquet([...], union_by_name = true) does")
    .option('--delimiter <c>', "CSV: the column separator, e.g. ';' or '|' (default: sniffed)")
    .option('--header', 'CSV: the first line holds the column names (default: sniffed)')
    .option('--no-header', 'CSV: the first line is data')
    .option('--quote <c>', "CSV: the quote character, '' for none (default: sniffed)")
    .option('--escape <c>', "CSV: the escape character, '' for none (default: sniffed)")
    .option('--encoding <name>', 'CSV: utf-8 (default), utf-16 or latin-1')
    .option('--skip <n>', 'CSV: lines to skip at the start of each file', parseInteger)
    .option('--ignore-errors', 'CSV: skip rows that do not parse instead of failing')
    .option('--csv <key=value>', "CSV: any other read_csv option, repeatable, e.g. --csv null_padding=true --csv nullstr=NA (a value in \"...\" stays text)", parseCsvOption)
    .action(async (dataset, opts, cmd) => {
      const overrides = opts.memoryLimit ? { memory_limit: opts.memoryLimit } : {};
      await runCommand('analyze', cmd.optsWithGlobals(), (ctx) => handle(ctx, dataset, opts, cmd), {
        overrides, options: passedOptions(cmd),
      });
    });
}

/** The `csv` param from the CSV flags (a flag wins over the same key in --csv), or undefined. */
function csvParams(opts, cmd) {
  const csv = { ...(opts.csv || {}) };
  for (const key of ['delimiter', 'quote', 'escape', 'encoding', 'skip']) {
    if (opts[key] !== undefined) csv[key] = opts[key];
  }
  // --header/--no-header default to true: only a flag given on the command line is sent
  if (cmd.getOptionValueSource('header') === 'cli') csv.header = opts.header;
  if (opts.ignoreErrors) csv.ignore_errors = true;
  return Object.keys(csv).length > 0 ? csv : undefined;
}

async function handle({ client, reporter, signal }, dataset, opts, cmd) {
  reporter.info('🔍 Starting data analysis...');
  reporter.info(`📈 Analyzing dataset: ${dataset}`);
  const params = { path: dataset };
  if (opts.sampleRows !== undefined) params.sample_rows = opts.sampleRows;
  if (opts.exact) params.exact = true;
  if (opts.timeout !== undefined) params.timeout_ms = opts.timeout;
  if (opts.unionByName) params.union_by_name = true;
  const csv = csvParams(opts, cmd);
  if (csv) params.csv = csv;
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
    if (opts.output === 'table') renderSniff(data.csv, r);
    renderFindings(data.findings || [], r, flagsOf(cmd.parent, 'analyze'));
    if (opts.monitor) {
      r.detail(`Peak memory seen: RSS ${formatBytes(peaks.rss, { both: true })}, spill ${formatBytes(peaks.spill, { both: true })}`);
    }
    r.success('Analysis completed successfully');
  });
}

/** A separator or quote as the user would type it: ';' '\t' '' (none). */
const shown = (ch) => (ch === '' ? 'none' : `'${JSON.stringify(ch).slice(1, -1)}'`);

/** What DuckDB's CSV sniffer decided, and the read_csv call that reads the file the same way. */
function renderSniff(dialect, r) {
  if (!dialect) return;
  const c = r.out;
  r.print('');
  r.print(c.green('🧭 CSV Sniffer'));
  r.print(`Delimiter: ${c.cyan(shown(dialect.delimiter))}   Quote: ${c.cyan(shown(dialect.quote))}   Escape: ${c.cyan(shown(dialect.escape))}   Header: ${c.cyan(dialect.header ? 'yes' : 'no')}   Skipped lines: ${c.cyan(dialect.skip_rows)}`);
  r.print(`Read it in SQL as: ${c.cyan(dialect.read_csv)}`);
}

/** Each finding as a warning (stderr, or a `warning` line with --json) with its hint in CLI terms. */
function renderFindings(findings, r, flags) {
  for (const f of findings) {
    const hint = cliHint(f.hint, 'analyze', flags);
    r.warn(`${f.kind}: ${f.message}`, { kind: f.kind, hint });
    if (!r.json && hint) r.info(`   Next step: ${hint}`);
  }
}

module.exports = { register, parseCsvOption };
