'use strict';
/**
 * `bmad-data convert <input> <output>`: CSV/JSON/Parquet files to Parquet through the sidecar's
 * `dataset.convert`: one output per input, each written atomically by a supervised worker in
 * bounded memory. An output that exists is kept unless --overwrite: when some exist, the run
 * resumes (the rest are converted and the kept ones named); when all exist, nothing is written
 * and the command fails, saying so.
 */
const path = require('node:path');
const { Option } = require('commander');
const { BmadDataError } = require('../../errors');
const { runCommand } = require('../session');
const { renderTable, formatBytes } = require('../format');
const { passedOptions, parseAtLeast, dataParams } = require('./common');

const TEXT_EXTENSIONS = ['.csv', '.tsv', '.txt', '.json', '.jsonl', '.ndjson'];

function register(program) {
  program
    .command('convert')
    .description('Convert CSV/JSON (or Parquet) files to Parquet, atomically; a rerun resumes, skipping outputs that exist')
    .argument('<input>', 'a CSV, JSON or Parquet file, a glob, or a directory of them')
    .argument('<output>', 'the Parquet file to write (one input), or the directory to write into (several)')
    .addOption(new Option('--format <format>', 'output format').choices(['parquet']).default('parquet'))
    .option('--overwrite', 'replace outputs that exist (without it they are kept, and a run whose outputs all exist fails)')
    .option('-m, --memory-limit <size>', 'memory budget for each file\'s conversion, e.g. 2GB or 2GiB')
    .option('--timeout <ms>', 'stop each file\'s conversion after this many milliseconds (default: timeout_threshold in resource-thresholds-config.yaml)', parseAtLeast(1))
    .action(async (input, output, opts, cmd) => {
      await runCommand('convert', cmd.optsWithGlobals(), (ctx) => handle(ctx, input, output, opts), {
        options: passedOptions(cmd),
        validate: () => checkOutput(output),
      });
    });
}

/** A text-format extension on the output would be Parquet under a misleading name: refuse it. */
function checkOutput(output) {
  const ext = path.extname(output).toLowerCase();
  if (TEXT_EXTENSIONS.includes(ext)) {
    throw new BmadDataError('USAGE', `convert writes Parquet, but the output ${output} is named ${ext}`, {
      hint: `Name the output ${path.basename(output, path.extname(output))}.parquet, or give a directory.`,
    });
  }
}

async function handle({ client, reporter, signal }, input, output, opts) {
  reporter.info(`🔄 Converting ${input} to Parquet...`);
  const params = { input, output: path.resolve(output), format: opts.format, overwrite: Boolean(opts.overwrite), ...dataParams(opts) };
  const onProgress = reporter.startProgress('convert', `Converting ${input}`);
  const result = await client.request('dataset.convert', params, { signal, onProgress });
  if (result.converted === 0 && result.skipped > 0) {
    throw new BmadDataError('INPUT_ERROR', `nothing converted: all ${result.skipped} output(s) exist already`, {
      hint: 'Pass --overwrite to replace them, or choose another output.',
      details: { skipped: result.files.map((f) => f.output) },
    });
  }
  for (const file of result.files.filter((f) => f.skipped)) {
    reporter.warn(`kept ${file.output}: it exists (from an earlier run?); --overwrite replaces it`, { path: file.output });
  }
  reporter.result('convert', result, (d, r) => {
    const rows = d.files.map((f) => [f.input, f.output, f.skipped ? 'kept' : 'written', f.rows, formatBytes(f.bytes)]);
    r.print(renderTable(['input', 'output', 'status', 'rows', 'size'], rows, { paint: r.out.bold, maxCell: 60 }));
    r.success(`Converted ${d.converted} file(s), ${d.rows} rows, ${formatBytes(d.bytes, { both: true })}${d.skipped ? `; kept ${d.skipped} existing` : ''}`);
  });
}

module.exports = { register };
