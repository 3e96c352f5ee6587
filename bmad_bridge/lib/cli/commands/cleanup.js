'use strict';
/** `bmad-data cleanup [--force]`: remove the sidecar's spill and temporary files. */
const { runCommand } = require('../session');
const { formatBytes } = require('../format');
const { passedOptions } = require('./common');

function register(program) {
  program
    .command('cleanup')
    .description('Remove leftover spill and temporary files (--force: also files of interrupted work)')
    .option('-f, --force', 'aggressive cleanup')
    .action(async (opts, cmd) => {
      await runCommand('cleanup', cmd.optsWithGlobals(), (ctx) => handle(ctx, opts), { options: passedOptions(cmd) });
    });
}

async function handle({ client, reporter, signal }, opts) {
  reporter.info('🧹 Performing DuckDB cleanup...');
  if (opts.force) reporter.warn('Performing aggressive cleanup...');
  const result = await client.request('cleanup', { aggressive: Boolean(opts.force) }, { signal });
  reporter.result('cleanup', result, (d, r) => {
    // The result goes to stdout (the chatter above goes to stderr).
    r.print(r.out.green(`✅ Cleanup completed: freed ${formatBytes(d.bytes_freed, { both: true })}, removed ${d.files_removed} files`));
  });
}

module.exports = { register };
