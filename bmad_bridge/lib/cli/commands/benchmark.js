'use strict';
/**
 * `bmad-data benchmark`: run a suite through the sidecar and plain DuckDB side by side (`bench.run`),
 * optionally judge it against a baseline (`bench.compare`), and show a table; `--list` shows the
 * recorded runs. Exit code 15 (REGRESSION_FOUND) when the comparison flags a regression, so a CI
 * job fails on it; errors keep their own exit codes (lib/errors.js). docs/performance/benchmarks.md.
 */
const path = require('node:path');
const { InvalidArgumentError, Option } = require('commander');
const { runCommand } = require('../session');
const { formatBytes, formatMs, renderTable } = require('../format');
const { parseInteger, passedOptions } = require('./common');

const SUITES = ['smoke', 'query', 'load', 'memory', 'tpch', 'all'];
/** Exit code when a comparison finds a regression (distinct from every error's code). */
const REGRESSION_EXIT = 15;

function parseSizes(value, previous = []) {
  const sizes = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of sizes) {
    if (!/^\d+(\.\d+)?\s*[KMGT]i?B$/i.test(s)) throw new InvalidArgumentError(`'${s}' is not a size such as 1MB, 100MB or 1GB.`);
  }
  return [...previous, ...sizes];
}

function register(program) {
  program
    .command('benchmark')
    .description('Benchmark the sidecar against plain DuckDB, keep baselines, and flag regressions (exit 15)')
    .addOption(new Option('-s, --suite <suite>', 'suite to run').choices(SUITES))
    .addOption(new Option('-t, --test-type <type>', 'same as --suite (older name)').choices(SUITES).hideHelp())
    .option('--size <sizes>', 'input sizes, comma-separated or repeated (default: 1MB for smoke; 1MB,100MB,1GB otherwise)', parseSizes)
    .option('-r, --repeat <n>', 'counted runs per question and side, after a warm-up (default 3)', parseInteger)
    .option('-l, --label <name>', 'name this run, to compare against it later')
    .option('--question <names>', 'only these questions of the suite (comma-separated)')
    .option('--threads <n>', 'DuckDB threads on both sides', parseInteger)
    .option('-m, --memory-limit <size>', 'the budget on both sides (e.g. 2GB)')
    .option('--timeout <ms>', 'per measured run; a run past it is recorded as TIMEOUT (default 600000)', parseInteger)
    .option('--compare <label|run>', 'judge this run against a baseline run (a label or a run id)')
    .option('--any-machine', 'with --compare: allow a baseline measured on another machine')
    .option('-o, --output <file>', 'write a report: report.html, report.md or report.json')
    .option('--list', 'list the recorded runs instead of running one')
    .action(async (opts, cmd) => {
      let regression = false;
      const code = await runCommand('benchmark', cmd.optsWithGlobals(), async (ctx) => {
        regression = await handle(ctx, opts);
      }, { options: passedOptions(cmd) });
      if (code === 0 && regression) process.exitCode = REGRESSION_EXIT;
    });
}

/** "[████░░░░░░]  42%  3/7 window · 1MB · sidecar · run 2" */
function progressLine(v) {
  const filled = Math.round((v.percent || 0) / 10);
  const bar = `[${'█'.repeat(filled)}${'░'.repeat(10 - filled)}]`;
  const what = v.side === 'data' ? 'writing data' : `${v.side} · ${v.repeat === 0 ? 'warm-up' : `run ${v.repeat}`}`;
  return `${bar} ${String(Math.round(v.percent || 0)).padStart(3)}%  ${v.question}/${v.questions} ${v.name} · ${v.size} · ${what}`;
}

function onProgress(reporter) {
  const spin = reporter.startProgress('benchmark', 'Benchmarking');
  return (value) => {
    if (reporter.json) spin(value);
    else if (reporter.spinner) reporter.spinner.text = progressLine(value);
  };
}

function ratio(value) {
  return value === null ? '-' : value.toFixed(2);
}

function runTable(cases) {
  const ms = (s) => (s.status === 'ok' ? formatMs(s.median_ms) : s.status);
  return renderTable(
    ['Question', 'Size', 'Budget', 'Sidecar', 'Plain DuckDB', 'Ratio', 'Sidecar RSS', 'Answers'],
    cases.map((c) => [c.question, formatBytes(c.size_bytes), c.budget_bytes === null ? 'none' : formatBytes(c.budget_bytes),
      ms(c.sidecar), ms(c.plain), ratio(c.ratio), formatBytes(c.sidecar.peak_rss_bytes), c.answers_agree ? 'agree' : 'DIFFER']),
  );
}

function compareTable(cmp) {
  return renderTable(
    ['Question', 'Size', 'Baseline', 'Candidate', 'Ratio', 'Verdict', 'Evidence'],
    cmp.cases.map((v) => [v.question, formatBytes(v.size_bytes), formatMs(v.baseline_median_ms), formatMs(v.candidate_median_ms),
      ratio(v.ratio), v.verdict + (v.rerun ? ' (re-run)' : ''), v.p_value === null ? v.test : `${v.test} p=${v.p_value.toPrecision(2)}`]),
  );
}

function listTable(runs) {
  return renderTable(
    ['Run', 'Label', 'Started', 'Suite', 'Sizes', 'Status', 'Commit'],
    runs.map((r) => [r.run_id, r.label || '', r.started_at, r.suite, r.sizes.join(','), r.status, (r.git_commit || '').slice(0, 12)]),
  );
}

/** Returns true when a comparison found a regression. */
async function handle({ client, reporter, signal }, opts) {
  if (opts.list) {
    const listed = await client.request('bench.list', {}, { signal });
    reporter.result('benchmark', listed, (d, r) => {
      r.print(listTable(d.runs));
      r.detail(`Results: ${d.results_file}`);
    });
    return false;
  }
  const suite = opts.suite || opts.testType || 'smoke';
  const params = { suite };
  if (opts.size) params.sizes = opts.size;
  if (opts.repeat !== undefined) params.repeat = opts.repeat;
  if (opts.label) params.label = opts.label;
  if (opts.timeout !== undefined) params.timeout_ms = opts.timeout;
  if (opts.question) params.questions = opts.question.split(',').map((q) => q.trim()).filter(Boolean);
  const settings = {};
  if (opts.threads !== undefined) settings.threads = opts.threads;
  if (opts.memoryLimit) settings.memory_limit = opts.memoryLimit;
  if (Object.keys(settings).length) params.settings = settings;
  const report = opts.output ? { path: path.resolve(opts.output) } : undefined;
  if (report && !opts.compare) params.report = report;

  reporter.info(`🏃 Benchmarking suite '${suite}': the sidecar and plain DuckDB, side by side...`);
  const run = await client.request('bench.run', params, { signal, onProgress: onProgress(reporter) });
  let comparison = null;
  if (opts.compare) {
    reporter.info(`⚖️  Comparing with '${opts.compare}'...`);
    const cmpParams = { baseline: opts.compare, candidate: run.run.run_id, allow_other_machine: Boolean(opts.anyMachine) };
    if (report) cmpParams.report = report;
    comparison = await client.request('bench.compare', cmpParams, { signal, onProgress: onProgress(reporter) });
  }
  const data = { ...run, comparison };
  reporter.result('benchmark', data, (d, r) => {
    r.print(runTable(d.cases));
    if (d.failures) r.warn(`${d.failures} question(s) failed on a side; their error codes are in the table`);
    if (d.wrong_answers) r.error(`${d.wrong_answers} question(s) gave different answers across sides or runs`);
    if (d.comparison) {
      r.print(compareTable(d.comparison));
      for (const note of d.comparison.notes) r.detail(note);
    }
    const saved = (d.comparison && d.comparison.report) || d.report;
    if (saved) r.detail(`Report: ${saved.path}${saved.warnings.length ? ` (${saved.warnings.join('; ')})` : ''}`);
    r.detail(`Run ${d.run.run_id}${d.run.label ? ` (label ${d.run.label})` : ''} recorded in ${d.results_file}`);
    if (d.comparison && d.comparison.regressions) r.error(`${d.comparison.regressions} regression(s) against '${opts.compare}' (exit ${REGRESSION_EXIT})`);
    else r.success(d.comparison ? `No regression against '${opts.compare}'` : 'Benchmark completed');
  });
  return Boolean(comparison && comparison.regressions > 0);
}

module.exports = { register, progressLine, REGRESSION_EXIT };
