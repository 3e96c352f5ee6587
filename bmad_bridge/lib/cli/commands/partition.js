'use strict';
/**
 * `bmad-data partition <input> <output_dir> --by col[,col]`: a dataset of any size as a
 * Hive-partitioned Parquet directory, through the sidecar's `dataset.partition` (one supervised,
 * bounded-memory job per input file; each input's files appear only once it is complete).
 *
 * The output directory:
 *  - missing or empty: written.
 *  - left by an earlier `partition` run (it holds `.bmad-done/`): resumed; inputs that run
 *    finished are skipped. When it had finished them all, nothing is written and the command
 *    fails, saying so (--overwrite starts over).
 *  - holding anything else: refused, unless --overwrite.
 * --overwrite writes into a staging directory beside it (`.<name>.bmad-overwrite`, itself resumed
 * by a rerun) and swaps it in when complete, so the old dataset stays whole until the new one is.
 */
const fs = require('node:fs/promises');
const path = require('node:path');
const { InvalidArgumentError } = require('commander');
const { BmadDataError } = require('../../errors');
const { runCommand } = require('../session');
const { formatBytes } = require('../format');
const { passedOptions, parseAtLeast, parseBetween, dataParams } = require('./common');

const DONE_DIR = '.bmad-done'; // sidecar/methods/dataset_partition.py DONE_DIR
const LAYOUTS = ['by', 'hash-by', 'rows-per-file'];

/** Commander parser for `a,b`: column names as the sidecar accepts them. */
function parseColumns(value) {
  const names = String(value).split(',').map((s) => s.trim()).filter(Boolean);
  const bad = names.find((n) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(n));
  if (names.length === 0 || bad !== undefined) {
    throw new InvalidArgumentError(`expected column names separated by commas (letters, digits, _)${bad ? `; '${bad}' is not one` : ''}.`);
  }
  return names;
}

function register(program) {
  program
    .command('partition')
    .description('Write a dataset as Hive-partitioned Parquet (col=value/ directories), atomically per input; a rerun resumes')
    .argument('<input>', 'a CSV, JSON or Parquet file, a glob, or a directory of them')
    .argument('<output_dir>', 'the directory to write (created if missing)')
    .option('--by <columns>', 'partition by these columns\' values, e.g. --by year,region (for columns with few values you filter on)', parseColumns)
    .option('--hash-by <columns>', 'partition by a hash of these columns into --buckets bucket=N/ directories (for join or group keys)', parseColumns)
    .option('--buckets <n>', 'buckets for --hash-by (2..4096, default 16)', parseBetween(2, 4096))
    .option('--rows-per-file <n>', 'no partition columns: cut into files of about this many rows (at least 1000)', parseAtLeast(1000))
    .option('--overwrite', 'replace an output directory that exists (the new one is swapped in when complete); without it, only a directory an earlier partition run left is written into, resuming it')
    .option('-m, --memory-limit <size>', 'memory budget for each input\'s job, e.g. 2GB or 2GiB')
    .option('--timeout <ms>', 'stop each input\'s job after this many milliseconds (default: timeout_threshold in resource-thresholds-config.yaml)', parseAtLeast(1))
    .action(async (input, outputDir, opts, cmd) => {
      const passed = passedOptions(cmd);
      await runCommand('partition', cmd.optsWithGlobals(), (ctx) => handle(ctx, input, outputDir, opts), {
        options: passed,
        validate: () => checkLayout(passed),
      });
    });
}

function usage(message, hint) {
  return new BmadDataError('USAGE', message, { hint });
}

function checkLayout(passed) {
  const chosen = LAYOUTS.filter((f) => passed.includes(f));
  if (chosen.length !== 1) {
    throw usage(chosen.length ? `--${chosen.join(' and --')} cannot be combined` : 'no partitioning given',
      'Give exactly one of --by col[,col], --hash-by col[,col] (with --buckets n) or --rows-per-file n.');
  }
  if (passed.includes('buckets') && chosen[0] !== 'hash-by') throw usage('--buckets applies to --hash-by only', 'Drop --buckets, or partition with --hash-by.');
}

/** 'missing' | 'empty' | 'resumable' (an earlier partition run's) | 'foreign' | 'file'. */
async function stateOf(dir) {
  let entries;
  try {
    entries = await fs.readdir(dir);
  } catch (err) {
    if (err.code === 'ENOENT') return 'missing';
    if (err.code === 'ENOTDIR') return 'file';
    throw err;
  }
  if (entries.length === 0) return 'empty';
  return entries.includes(DONE_DIR) ? 'resumable' : 'foreign';
}

async function handle({ client, reporter, signal }, input, outputDir, opts) {
  const target = path.resolve(outputDir);
  const state = await stateOf(target);
  if (state === 'file') {
    throw new BmadDataError('INPUT_ERROR', `the output ${outputDir} is a file`, { hint: 'Give a directory (it is created if missing).', details: { path: target } });
  }
  if (state === 'foreign' && !opts.overwrite) {
    throw new BmadDataError('INPUT_ERROR', `the output directory ${outputDir} exists and holds files that no partition run wrote`, {
      hint: 'Pass --overwrite to replace it, or choose a new or empty directory.',
      details: { path: target },
    });
  }
  const swap = opts.overwrite && state !== 'missing' && state !== 'empty';
  const writeTo = swap ? path.join(path.dirname(target), `.${path.basename(target)}.bmad-overwrite`) : target;
  const params = { input, output_dir: writeTo, ...layoutParams(opts), ...dataParams(opts) };
  reporter.info(`🗂️  Partitioning ${input} into ${outputDir}...`);
  const onProgress = reporter.startProgress('partition', `Partitioning ${input}`);
  const result = await client.request('dataset.partition', params, { signal, onProgress });
  if (swap) await swapIn(writeTo, target);
  else if (result.written === 0 && result.skipped > 0) {
    throw new BmadDataError('INPUT_ERROR', `nothing written: ${outputDir} already holds a finished partitioning of all ${result.inputs} input(s)`, {
      hint: 'Pass --overwrite to write it again, or choose a new directory.',
      details: { path: target, inputs: result.inputs },
    });
  }
  if (result.skipped > 0) reporter.warn(`resumed: kept ${result.skipped} input(s) finished by an earlier run`, { skipped: result.skipped });
  const data = { ...result, output_dir: target };
  reporter.result('partition', data, (d, r) => {
    r.print(`${d.output_dir}: ${d.files} Parquet files, ${d.rows} rows written now, ${formatBytes(d.bytes, { both: true })}`);
    r.success(`Partitioned ${d.written} of ${d.inputs} input(s)${d.skipped ? ` (${d.skipped} finished earlier)` : ''}`);
  });
}

function layoutParams(opts) {
  if (opts.by) return { by: opts.by };
  if (opts.hashBy) return { hash_by: opts.hashBy, ...(opts.buckets !== undefined ? { buckets: opts.buckets } : {}) };
  return { rows_per_file: opts.rowsPerFile };
}

/** Put the finished `staged` directory where `target` is; the old one goes only after. */
async function swapIn(staged, target) {
  const old = path.join(path.dirname(target), `.${path.basename(target)}.bmad-old-${process.pid}`);
  await fs.rename(target, old);
  await fs.rename(staged, target);
  await fs.rm(old, { recursive: true, force: true });
}

module.exports = { register };
