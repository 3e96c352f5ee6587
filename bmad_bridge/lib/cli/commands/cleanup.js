'use strict';
/** `bmad-data cleanup [--force]`: remove the sidecar's spill and temporary files. */
const { runCommand } = require('../session');
const { formatBytes } = require('../format');
const { passedOptions } = require('./common');

function register(program) {
  program
    .command('cleanup')
    .description('Remove what stopped sidecars left: spill files, unfinished outputs, database files, and the kept parts of named jobs untouched for 7 days')
    .option('-f, --force', 'also remove the kept parts of every named job (--job-id) not running now: those jobs can no longer resume')
    .action(async (opts, cmd) => {
      await runCommand('cleanup', cmd.optsWithGlobals(), (ctx) => handle(ctx, opts), { options: passedOptions(cmd) });
    });
}

async function handle({ client, reporter, signal }, opts) {
  reporter.info('🧹 Performing DuckDB cleanup...');
  if (opts.force) reporter.warn('Also removing the kept parts of every named job not running now...');
  const params = opts.force ? { aggressive: true, job_max_age_ms: 0 } : {};
  const result = await client.request('cleanup', params, { signal });
  reporter.result('cleanup', result, (d, r) => {
    // The result goes to stdout (the chatter above goes to stderr).
    r.print(r.out.green(`✅ Cleanup completed: freed ${formatBytes(d.bytes_freed, { both: true })}, removed ${d.files_removed} files`));
  });
}

module.exports = { register };
