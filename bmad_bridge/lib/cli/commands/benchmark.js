'use strict';
/** `bmad-data benchmark`: runs `bench.run` once the sidecar serves it (the benchmark issue). */
const { Option } = require('commander');
const fs = require('node:fs/promises');
const { BmadDataError } = require('../../errors');
const { runCommand } = require('../session');
const { passedOptions } = require('./common');

function register(program) {
  program
    .command('benchmark')
    .description('Run DuckDB benchmarks under the memory budget (arrives with the benchmark issue)')
    .addOption(new Option('-t, --test-type <type>', 'suite to run').choices(['load', 'query', 'memory', 'all']).default('all'))
    .option('-o, --output <file>', 'save the report as JSON')
    .action(async (opts, cmd) => {
      await runCommand('benchmark', cmd.optsWithGlobals(), (ctx) => handle(ctx, opts), { options: passedOptions(cmd) });
    });
}

async function handle({ client, reporter, init, signal }, opts) {
  if (!(init.methods || []).includes('bench.run')) {
    throw new BmadDataError('NOT_AVAILABLE', 'benchmarks are not wired yet: they arrive with the benchmark issue', {
      hint: 'Until then, time a query: `bmad-data query "<sql>" --json` reports elapsed time and peak memory in stats.',
      details: { method: 'bench.run', served_methods: init.methods || [] },
    });
  }
  reporter.info('🏃 Running DuckDB benchmarks...');
  const onProgress = reporter.startProgress('benchmark', 'Benchmarking');
  const result = await client.request('bench.run', { suite: opts.testType }, { signal, onProgress });
  if (opts.output) await fs.writeFile(opts.output, `${JSON.stringify(result, null, 2)}\n`);
  reporter.result('benchmark', result, (d, r) => {
    r.print(JSON.stringify(d, null, 2));
    r.success(opts.output ? `Results saved to: ${opts.output}` : 'Benchmarks completed');
  });
}

module.exports = { register };
