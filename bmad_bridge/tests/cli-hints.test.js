'use strict';
/**
 * Issue 10: hints name the flags of the surface that was used. Every hint text in the sidecar's
 * source, rewritten for every CLI command, carries no protocol-only term, and every flag it
 * names exists on that command; SidecarClient keeps the protocol's hint.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { buildProgram } = require('../lib/cli/main');
const { cliHint, flagsOf } = require('../lib/cli/hints');
const { EXIT_CODES } = require('../lib/errors');
const { REPO, runCli, startClient, tempDir } = require('./helpers');

/** Words of the JSON-RPC protocol that mean nothing to someone at the CLI. */
const PROTOCOL_TERMS = [
  /\b(timeout_ms|max_rows|job_id|progress_token|config_dir|hash_by|rows_per_file|output_dir)\b/,
  /overwrite: true/, /\{parts: ?0\}/, /`(partition|output|settings|sql|by|memory_limit)`/,
  /\brequests?\b/i, /docs\/protocol\.md/, /schemas\//, /restart the sidecar/i, /\binitialize\b/,
  /\b(config\.get|config\.validate|jobs\.cancel|jobs\.status|query\.run|dataset\.\w+)\b/,
  /\bdetails\b/, /"jsonrpc"/, /\{"memory_limit"/, /\bthe client\b/, /\(output\)/,
  /union_by_name: true/, /\bcsv: \{/, /\bcsv options\b/, /\b(ignore_errors|null_padding): true/,
];

function sidecarHints() {
  const python = process.env.BMAD_DATA_PYTHON || 'python3';
  const out = execFileSync(python, [path.join(__dirname, 'sidecar_hints.py'), path.join(REPO, 'sidecar')], { encoding: 'utf8' });
  return JSON.parse(out);
}

test('no sidecar hint reaches a CLI user in protocol terms, and every flag it names exists on the command', () => {
  const hints = sidecarHints();
  assert.ok(hints.length >= 60, `found only ${hints.length} hints: is the extractor still reading the sidecar?`);
  const raw = hints.filter((h) => PROTOCOL_TERMS.some((t) => t.test(h.hint)));
  assert.ok(raw.length >= 15, `the term list catches ${raw.length} untranslated hints: it must catch the protocol's words`);
  const program = buildProgram();
  const problems = [];
  for (const command of program.commands.map((c) => c.name())) {
    const flags = flagsOf(program, command);
    for (const { file, line, hint } of hints) {
      const text = cliHint(hint, command, flags);
      const term = PROTOCOL_TERMS.find((t) => t.test(text));
      if (term) problems.push(`${file}:${line} for '${command}' still says ${term}: ${text}`);
      // a flag in `bmad-data <other> --flag` belongs to <other>; any other flag to this command
      const spans = [...text.matchAll(/`bmad-data ([a-z]+)([^`]*)`/g)].map(([, owner, rest]) => [owner, rest]);
      spans.push([command, text.replace(/`bmad-data [^`]*`/g, '')]);
      for (const [owner, part] of spans) {
        const known = flagsOf(program, owner);
        for (const [flag] of part.matchAll(/--[a-z][a-z-]*/g)) {
          if (!known.includes(flag)) problems.push(`${file}:${line} for '${command}' names ${flag}, which '${owner}' lacks: ${text}`);
        }
      }
    }
  }
  assert.deepEqual(problems, []);
});

test('cliHint names the flag of the command used', () => {
  const program = buildProgram();
  const hint = (h, c) => cliHint(h, c, flagsOf(program, c));
  assert.equal(hint('Raise `timeout_ms` for this request, or narrow the query.', 'query'), 'Raise --timeout <ms>, or narrow the query.');
  assert.equal(hint('Pass `overwrite: true` in `output` to replace it, or choose another path.', 'query'), 'Pass --overwrite to replace it, or choose another path.');
  assert.match(hint('The process running the query died; the sidecar replaced it. Retry the request.', 'analyze'), /Run the command again\.$/);
  assert.match(hint('query.run accepts: sql, database (and progress_token).', 'query'), /^Run `bmad-data query --help`/);
});

test('through a real sidecar: the CLI says --overwrite and --timeout, SidecarClient keeps the protocol hint', { timeout: 90000 }, async () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'taken.csv'), 'a\n1\n');
  const taken = await runCli(['query', 'SELECT 1', '--save', 'taken.csv', '--json'], { cwd: dir });
  assert.equal(taken.code, EXIT_CODES.INPUT_ERROR, taken.stdout);
  assert.match(taken.lines[0].error.hint, /^Pass --overwrite to replace it/);
  const human = await runCli(['query', 'SELECT 1', '--save', 'taken.csv'], { cwd: dir, env: { NO_COLOR: '1' } });
  assert.match(human.stderr, /Next step: Pass --overwrite to replace it/);
  const slow = await runCli(['query', 'SELECT count(*) FROM range(3000000000) t(i) WHERE hash(i) % 7 = 1', '--timeout', '300', '--json'], { cwd: dir });
  assert.equal(slow.code, EXIT_CODES.TIMEOUT, slow.stdout);
  assert.match(slow.lines.at(-1).error.hint, /^Raise --timeout <ms>/);

  const client = await startClient({ cwd: dir });
  try {
    await assert.rejects(
      client.request('query.run', { sql: 'SELECT 1', output: { path: path.join(dir, 'taken.csv'), format: 'csv' } }),
      (err) => /`overwrite: true` in `output`/.test(err.hint),
    );
  } finally {
    await client.close();
  }
});
