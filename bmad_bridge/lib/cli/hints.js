'use strict';
/**
 * The sidecar's hints speak its protocol ("pass `overwrite: true` in `output`", "raise
 * `timeout_ms`"), which is right for an agent calling SidecarClient and wrong for a person or an
 * agent at the `bmad-data` CLI. cliHint() rewrites a hint into the CLI's words: the flag of the
 * command that ran, or what to do at the CLI where no flag fits. SidecarClient keeps the
 * protocol hint; only the CLI's error report uses this.
 *
 * tests/cli-hints.test.js walks every hint text in the sidecar's source and checks that none
 * reaches a CLI user with a protocol term in it, and that every flag a rewritten hint names
 * exists on the command.
 */

const BUG = 'This is a bug in bmad-data (the CLI sent the sidecar a bad message); please report it with the command you ran.';

/** Flag `flag` when the command has it, else `otherwise` (text for commands without it). */
const flagOr = (flag, text, otherwise) => (ctx) => (ctx.has(flag) ? text : otherwise);
const help = (ctx) => `\`bmad-data ${ctx.command} --help\``;

/**
 * [protocol wording, CLI wording] in the order they apply. A replacement is a string or a
 * function of {command, has(flag)}. Whole-hint rules come first, then phrases, then single terms.
 */
const RULES = [
  // the exchange itself: the CLI wrote these messages, so a failure here is the CLI's bug
  [/^Send one UTF-8 JSON object \(or batch array\) per line, with no embedded newlines\.$/, BUG],
  [/^A request is \{"jsonrpc".*$/, BUG],
  [/^A request nests a few levels deep; send one JSON object \(or batch array\) per line\.$/, BUG],
  [/^Send at most \S+ requests per batch, or send them as separate lines\.$/, BUG],
  [/^Send \{"id": <the id of the request to cancel>\}, an integer or a string\.$/, BUG],
  [/^Call `initialize` to see the list of methods this sidecar serves\.$/,
    'This bmad-data and its sidecar do not match; run `bmad-data doctor` and reinstall both from one checkout.'],
  [/^Check the parameter names and types against docs\/protocol\.md or schemas\/\.$/, (ctx) => `Check the values given against ${help(ctx)}.`],
  [/^\S+ accepts: .*\(and progress_token\)\.$/, (ctx) => `Run ${help(ctx)} for its options.`],
  [/^Resend it to a running sidecar\.$/, 'Run the command again.'],
  [/please report it with the request that caused it\./, 'please report it with the command you ran.'],
  [/^Put large inputs in a file and pass its path; requests carry SQL and parameters only\.$/,
    'Put large inputs in a file and read it from the SQL (e.g. read_csv(\'data.csv\')); the command line carries SQL and options only.'],
  [/^The request was cancelled by the client; nothing was written\.$/, 'The command was cancelled (Ctrl+C); nothing was written.'],
  [/^Set it in initialize's overrides or (BMAD_DATA_\w+)\.$/, (ctx, m) => `Set ${m[1]}, or set it in the config files.`],
  // phrases
  [/^If it ran past its deadline, raise `timeout_ms` for this request or narrow the query;/,
    flagOr('--timeout', 'Raise --timeout <ms> or narrow the query if it ran past its deadline;',
      'If it ran past its deadline, give it more time (timeout_threshold in resource-thresholds-config.yaml) or narrow the query;')],
  [/`stall_timeout_ms` stopped it: look for what it waited on\./,
    'the stall watchdog stopped it: look for what it waited on, or raise BMAD_DATA_STALL_TIMEOUT_MS (stall_timeout_ms in the config files).'],
  [/details\.context marks it with a caret/, 'its Position is shown below'],
  [/ are in details\./, ' are shown below.'],
  [/Pass `overwrite: true` in `output` to replace it/, flagOr('--overwrite', 'Pass --overwrite to replace it', 'Remove it to replace it')],
  [/Raise `timeout_ms` for this request/, flagOr('--timeout', 'Raise --timeout <ms>', 'Give it more time: timeout_threshold in resource-thresholds-config.yaml')],
  [/Raise `?memory_limit`? in the request's settings/, flagOr('--memory-limit', 'Raise --memory-limit', 'Raise memory_limit of the memory profile (duckdb-memory-config-templates.yaml)')],
  [/\(`memory_limit`\)/, flagOr('--memory-limit', '(--memory-limit)', '(memory_limit of the memory profile)')],
  [/Pass settings through the request's `settings` or the config files/, (ctx) => {
    const flags = ['--memory-limit', '--threads'].filter((f) => ctx.has(f));
    return flags.length ? `Pass settings as options (${flags.join(', ')}) or in the config files` : 'Set settings in the config files';
  }],
  [/Settings belong in the request's `settings` \(e\.g\. \{"memory_limit": "4GB"\}\) or the config files/,
    flagOr('--memory-limit', 'Settings belong in options (e.g. --memory-limit 4GB) or the config files', 'Settings belong in the config files')],
  [/raise `max_temp_directory_size`/, 'raise max_temp_directory_size in the memory profile (duckdb-memory-config-templates.yaml)'],
  [/Send at least one statement in `sql`\./, 'Give at least one SQL statement.'],
  [/Send one SELECT per request\./, 'Run one SELECT per command.'],
  [/ ?\(?(?:see )?`?config\.get`? -> settings\.allowed_directories\)?/, ' (`bmad-data status` lists allowed_directories)'],
  [/ and restart the sidecar\./, ' and run the command again.'],
  [/`config\.validate` lists every problem/, '`bmad-data doctor` lists every problem'],
  [/named in details\.diagnostics/, 'named below'],
  [/named in details/, 'named below'],
  [/given in details/, 'given below'],
  [/Retry the request\./, 'Run the command again.'],
  [/send no `partition`, or `\{parts: 0\}` to skip the estimate/,
    flagOr('--parts', 'drop --parts, or pass --parts 0 to skip the estimate', 'run it with `bmad-data query --parts 0` to skip the estimate')],
  [/stop it with jobs\.cancel; a job_id names one run at a time/,
    flagOr('--job-id', 'stop the command running it (Ctrl+C); a --job-id names one run at a time', 'stop the command running it (Ctrl+C); a job id names one run at a time')],
  [/Use a new job_id, or `jobs\.cancel` this one to discard its finished parts\./,
    flagOr('--job-id', 'Use a new --job-id for this query or number of parts.', 'Use a new job id (`bmad-data query --job-id`) for this query or number of parts.')],
  [/let the sidecar write its result \(output\) instead of COPY\/CREATE/, flagOr('--save', 'write its result with --save instead of COPY/CREATE', 'write its result with `bmad-data query --save` instead of COPY/CREATE')],
  [/writing its result to an output file/, flagOr('--save', 'writing its result with --save <file>', 'writing its result with `bmad-data query --save <file>`')],
  [/Point config_dir at/, 'Point --config-dir at'],
  // bench.* (the flags of `bmad-data benchmark`)
  [/List the runs with bench\.list \(bmad-data benchmark --list\); run one with --label to keep a baseline\./,
    flagOr('--list', 'List the runs with --list; run one with --label to keep a baseline.',
      'List the runs with `bmad-data benchmark --list`; run one with `bmad-data benchmark --label` to keep a baseline.')],
  [/pass allow_other_machine: true \(--any-machine\)/,
    flagOr('--any-machine', 'pass --any-machine', 'compare with `bmad-data benchmark --any-machine`')],
  // dataset.analyze's csv and union_by_name (the flags of `bmad-data analyze`)
  [/Pass the csv options a query would need, e\.g\. csv: \{delimiter: (.+?), null_padding: true\}+ for short rows, or ignore_errors: true to skip rows that do not parse\./,
    (ctx, m) => (ctx.has('--delimiter')
      ? `Pass the CSV options a query would need, e.g. --delimiter ${m[1]} (with --csv null_padding=true for short rows), or --ignore-errors to skip rows that do not parse.`
      : `Pass the CSV options a query would need, e.g. \`bmad-data analyze --delimiter ${m[1]}\`, or read_csv(..., delim = ${m[1]}, null_padding = true) in SQL.`)],
  [/Fix the csv options \(read_csv's own: delimiter, header, quote, escape, skip, \.\.\.\)\./,
    flagOr('--delimiter', 'Fix the CSV options (--delimiter, --header/--no-header, --quote, --escape, --encoding, --skip, --csv key=value).', "Fix read_csv's options in the SQL (delim, header, quote, escape, skip, ...).")],
  [/Drop the csv options, or point at CSV files\./,
    flagOr('--delimiter', 'Drop the CSV options (--delimiter, --header, --quote, --escape, --encoding, --skip, --ignore-errors, --csv), or point at CSV files.', 'Point at CSV files.')],
  [/pass csv options \(delimiter, null_padding, \.\.\.\)/,
    flagOr('--delimiter', 'pass CSV options (--delimiter, --csv null_padding=true, ...)', "pass CSV options (`bmad-data analyze --delimiter`, or read_csv's delim, null_padding in SQL)")],
  [/Pass union_by_name: true to analyze/, flagOr('--union-by-name', 'Pass --union-by-name to analyze', 'Analyze with `bmad-data analyze --union-by-name`')],
  [/`by` for columns with few values you filter on; `hash_by` for join or group keys; `rows_per_file` to cut/, flagOr('--by',
    '--by for columns with few values you filter on; --hash-by (with --buckets) for join or group keys; --rows-per-file to cut',
    '`bmad-data partition --by` for columns with few values you filter on; `bmad-data partition --hash-by` for join or group keys; `bmad-data partition --rows-per-file` to cut')],
];

/**
 * The hint in the CLI's words for `command` (whose long flags `flags` lists, globals included).
 *   cliHint('Raise `timeout_ms` for this request, or narrow the query.', 'query', ['--timeout'])
 *     -> 'Raise --timeout <ms>, or narrow the query.'
 */
function cliHint(hint, command, flags) {
  if (!hint) return hint;
  const known = new Set(flags);
  const ctx = { command, has: (flag) => known.has(flag) };
  let text = String(hint);
  for (const [pattern, replacement] of RULES) {
    const m = text.match(pattern);
    if (!m) continue;
    const value = typeof replacement === 'function' ? replacement(ctx, m) : replacement;
    text = text.slice(0, m.index) + value + text.slice(m.index + m[0].length);
  }
  return text;
}

/** Long flags of `command` in `program` plus the global ones (`--json`, `--config-dir`, ...). */
function flagsOf(program, command) {
  const sub = program.commands.find((c) => c.name() === command);
  return ['--help', ...[...program.options, ...(sub ? sub.options : [])].map((o) => o.long).filter(Boolean)];
}

module.exports = { cliHint, flagsOf, RULES };
