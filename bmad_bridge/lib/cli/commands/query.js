'use strict';
/** `bmad-data query <sql | --file f>`: run SQL through the sidecar's `query.run`. */
const fs = require('node:fs/promises');
const path = require('node:path');
const { Option } = require('commander');
const { BmadDataError } = require('../../errors');
const { runCommand } = require('../session');
const { renderResult } = require('./render');
const { passedOptions, parseInteger, parseAtLeast, parseBetween } = require('./common');
const { formatBytes, formatMs } = require('../format');

function register(program) {
  program
    .command('query')
    .description('Run SQL within the memory budget (results capped; big results go to a file with --save)')
    .argument('[sql]', 'the SQL to run (or use --file)')
    .option('-f, --file <path>', 'read the SQL from a file')
    .option('-d, --database <path>', 'DuckDB database file to use, created if missing (default: a private database file of this command\'s sidecar, deleted when the command ends: tables do not outlive one command)')
    .option('-m, --memory-limit <size>', 'memory budget for this query, e.g. 2GB or 2GiB')
    .option('--threads <n>', 'DuckDB threads for this query', parseInteger)
    .option('--max-rows <n>', 'rows to return at most, up to 1000000 (default 10000); write more with --save', parseBetween(0, 1000000))
    .option('--timeout <ms>', 'stop the query after this many milliseconds (default: timeout_threshold in resource-thresholds-config.yaml)', parseAtLeast(1))
    .option('--save <path>', 'write the full result to this file, atomically (missing directories are created)')
    .addOption(new Option('--format <format>', 'file format for --save (default: from its extension)').choices(['parquet', 'csv', 'json']))
    .option('--overwrite', 'replace an existing --save file (without it, an existing file is an error)')
    .option('--parts <n>', 'split into n parts (2..256) and combine exactly; 0: never split up front', parseInteger)
    .option('--job-id <id>', 'name the job: if it fails or is stopped, the same command resumes from its finished parts')
    .addOption(new Option('-o, --output <format>', 'how to print the result').choices(['table', 'json', 'csv']).default('table'))
    .action(async (sql, opts, cmd) => {
      const passed = passedOptions(cmd);
      let output = null;
      await runCommand('query', cmd.optsWithGlobals(), (ctx) => handle(ctx, sql, opts, output), {
        options: passed,
        validate: () => { output = saveTarget(opts, passed); },
      });
    });
}

async function readSql(sql, file) {
  if (sql && file) throw usage('give the SQL as an argument or with --file, not both');
  if (file) {
    try {
      return await fs.readFile(file, 'utf8');
    } catch (err) {
      throw new BmadDataError('INPUT_ERROR', `cannot read SQL file ${file}: ${err.message}`, { hint: 'Check the path.', details: { path: file } });
    }
  }
  if (!sql) throw usage('no SQL given');
  return sql;
}

function usage(message, hint = 'Run `bmad-data query --help` for the options.') {
  return new BmadDataError('USAGE', message, { hint });
}

const FORMAT_OF_EXTENSION = Object.freeze({ parquet: 'parquet', pq: 'parquet', csv: 'csv', json: 'json', jsonl: 'json', ndjson: 'json' });

/** The format a file name's extension says, or undefined: inferFormat('a/b.jsonl') -> 'json'. */
function inferFormat(file) {
  return FORMAT_OF_EXTENSION[path.extname(file).toLowerCase().slice(1)];
}

/**
 * The `output` of query.run for --save/--format/--overwrite, or null without --save. Refuses
 * the flags that would be silently ignored or contradict each other, naming both flags.
 */
function saveTarget(opts, passed) {
  if (!opts.save) {
    for (const flag of ['format', 'overwrite']) {
      if (passed.includes(flag)) throw usage(`--${flag} applies to the file of --save, and no --save was given`, `Add --save <file>, or drop --${flag} (--output sets how printed rows look).`);
    }
    return null;
  }
  if (passed.includes('output')) {
    throw usage('--output sets how rows are printed, but with --save the rows go to the file and none are printed', 'Drop --output, or drop --save to print the rows.');
  }
  const implied = inferFormat(opts.save);
  if (opts.format && implied && opts.format !== implied) {
    throw usage(`--save ${opts.save} names a ${implied} file but --format says ${opts.format}`, `Drop --format (the extension decides), or save to a .${opts.format} file.`);
  }
  const format = opts.format || implied;
  if (!format) throw usage(`cannot tell the format of --save ${opts.save} from its extension`, 'Add --format parquet|csv|json, or use a .parquet, .csv or .json file name.');
  return { path: path.resolve(opts.save), format, overwrite: Boolean(opts.overwrite) };
}

/**
 * Create the missing parent directories of `file`; returns those it created, deepest first,
 * so that a failed query can remove them again (removeEmpty).
 */
async function makeParents(file) {
  const first = await fs.mkdir(path.dirname(file), { recursive: true });
  if (!first) return [];
  const made = [];
  for (let dir = path.dirname(file); dir.length >= first.length; dir = path.dirname(dir)) made.push(dir);
  return made;
}

/** Remove the directories given (deepest first) while they are empty. */
async function removeEmpty(dirs) {
  for (const dir of dirs) {
    try {
      await fs.rmdir(dir);
    } catch {
      return; // not empty (something else wrote there) or already gone: leave it
    }
  }
}

async function handle({ client, reporter, signal }, sqlArg, opts, output) {
  const sql = await readSql(sqlArg, opts.file);
  const params = { sql };
  if (opts.database) params.database = opts.database;
  if (opts.maxRows !== undefined) params.max_rows = opts.maxRows;
  if (opts.timeout !== undefined) params.timeout_ms = opts.timeout;
  if (opts.parts !== undefined) params.partition = { parts: opts.parts };
  if (opts.jobId) params.job_id = opts.jobId;
  const settings = {};
  if (opts.memoryLimit) settings.memory_limit = opts.memoryLimit;
  if (opts.threads !== undefined) settings.threads = opts.threads;
  if (Object.keys(settings).length) params.settings = settings;
  if (output) params.output = output;
  const made = output ? await makeParents(output.path) : [];
  if (made.length) reporter.detail(`Created ${made[made.length - 1]} for --save`);
  reporter.info('🔍 Running query...');
  const onProgress = reporter.startProgress('query', 'Running query');
  let result;
  try {
    result = await client.request('query.run', params, { signal, onProgress });
  } catch (err) {
    await removeEmpty(made);
    throw err;
  }
  reporter.result('query', result, (data, r) => {
    if (!data.output) renderResult(data, opts.output, r);
    if (data.truncated) r.warn(`showing the first ${data.rows.length} rows; write everything with --save <file>`);
    if (data.output) r.success(`Wrote ${data.output.rows ?? data.row_count} rows to ${data.output.path}`);
    const split = splitLine(data.stats);
    if (split) r.info(split);
    r.success(`Query completed: ${data.row_count} rows${statsLine(data.stats)}`);
  });
}

function statsLine(stats) {
  if (!stats) return '';
  const parts = [formatMs(stats.elapsed_ms)];
  if (typeof stats.peak_rss_bytes === 'number') parts.push(`peak RSS ${formatBytes(stats.peak_rss_bytes)}`);
  if (stats.peak_spill_bytes) parts.push(`spilled ${formatBytes(stats.peak_spill_bytes)}`);
  return ` in ${parts.join(', ')}`;
}

/** How the query was split, when it was: up front by the estimate, by request, or by the retry ladder. */
function splitLine(stats) {
  if (!stats || !stats.partitions) return '';
  const estimated = stats.estimate && stats.estimate.parts === stats.partitions;
  const ladder = (stats.attempts || []).length > 1;
  const why = estimated ? `estimated ${formatBytes(stats.estimate.bytes)} against ${formatBytes(stats.estimate.limit_bytes)}` : ladder ? 'after a memory failure' : 'as asked';
  const extra = [];
  if (stats.reused_parts) extra.push(`${stats.reused_parts} reused`);
  if (stats.resplit_parts) extra.push(`${stats.resplit_parts} split again`);
  const last = (stats.attempts || [])[(stats.attempts || []).length - 1] || {};
  const where = last.executor && last.executor !== 'local' ? ` on ${last.executor === 'ray' ? 'Ray' : last.executor}` : '';
  if (last.hand_off) extra.push(`hand-off rule: ${last.hand_off}`);
  return `🧩 Ran in ${stats.partitions} parts${where} (${why})${extra.length ? `; ${extra.join(', ')}` : ''}`;
}

module.exports = { register, statsLine, splitLine };
