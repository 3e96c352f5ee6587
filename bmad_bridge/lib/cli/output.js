'use strict';
/**
 * How `bmad-data` talks to people and to programs.
 *
 * Human mode (default): chatter goes to stderr in BMad's colours (blue while working, green ✅,
 * yellow ⚠️, red ❌), results go to stdout, so `bmad-data query ... --output csv > out.csv`
 * leaves a clean file. A spinner with percent and memory runs on stderr when it is a TTY.
 * JSON mode (--json): stdout carries JSON lines only, one object per line, each with a `type`
 * (progress | warning | result | error | check); stderr stays silent.
 * NO_COLOR (any non-empty value) turns colour off; non-TTY streams get no colour and no spinner.
 */
const chalk = require('chalk');
const { formatBytes, jsonPieces } = require('./format');
const { cliHint, flagsOf } = require('./hints');

function colorLevel(stream, env) {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return 0;
  if (!stream.isTTY && !('FORCE_COLOR' in env)) return 0;
  const support = stream === process.stderr ? chalk.stderr.supportsColor : chalk.supportsColor;
  return support ? support.level : 0;
}

class Reporter {
  constructor({ json = false, stdout = process.stdout, stderr = process.stderr, env = process.env } = {}) {
    this.json = json;
    this.stdout = stdout;
    this.stderr = stderr;
    this.out = new chalk.Instance({ level: colorLevel(stdout, env) });
    this.err = new chalk.Instance({ level: colorLevel(stderr, env) });
    this.interactive = Boolean(stderr.isTTY) && !json && env.CI === undefined;
    this.spinner = null;
  }

  /** One JSON line on stdout (JSON mode only); a result's rows are written in batches. */
  emit(type, payload) {
    if (!this.json) return;
    const rows = payload.data && Array.isArray(payload.data.rows) ? payload.data.rows : null;
    writeChunks(this.stdout, jsonPieces({ type, ...payload }, rows), '\n');
  }

  _say(line) {
    if (this.json) return;
    const spinning = this.spinner && this.spinner.isSpinning;
    if (spinning) this.spinner.clear();
    this.stderr.write(`${line}\n`);
    if (spinning) this.spinner.render();
  }

  info(message) { this._say(this.err.blue(message)); }

  detail(message) { this._say(this.err.gray(message)); }

  success(message) { this._say(this.err.green(`✅ ${message}`)); }

  error(message) { this._say(this.err.red(`❌ ${message}`)); }

  warn(message, details = {}) {
    if (this.json) this.emit('warning', { message, ...details });
    else this._say(this.err.yellow(`⚠️  ${message}`));
  }

  /**
   * The failure report: red headline, then the error code and the hint, the hint in the
   * command's own flags (lib/cli/hints.js), not the sidecar protocol's words.
   */
  fail(command, error) {
    this.stopProgress();
    const { buildProgram } = require('./main'); // lazy: main.js requires this module
    const hint = cliHint(error.hint, command, flagsOf(buildProgram(), command));
    if (this.json) {
      const body = typeof error.toJSON === 'function' ? error.toJSON() : { code: 'INTERNAL', message: String(error.message || error) };
      this.emit('error', { command, error: { ...body, hint } });
      return;
    }
    this._say(this.err.red(`❌ Command '${command}' failed: ${error.message}`));
    if (error.code) this._say(this.err.yellow(`   Error code: ${error.code}`));
    if (hint) this._say(this.err.blue(`   Next step: ${hint}`));
    for (const line of detailLines(error.details || {})) this._say(this.err.gray(`   ${line}`));
  }

  /** A command's result: one JSON line in JSON mode, else whatever `render` writes to stdout. */
  result(command, data, render) {
    this.stopProgress();
    if (this.json) this.emit('result', { command, data });
    else if (render) render(data, this);
  }

  /** Write text to stdout (human mode). */
  print(text = '') {
    if (!this.json) this.stdout.write(`${text}\n`);
  }

  /** Write lines (any iterable, e.g. tableLines) to stdout in human mode, never as one string. */
  printLines(lines) {
    if (!this.json) writeChunks(this.stdout, lines, '', '\n');
  }

  /** Write text given in pieces (e.g. jsonPieces), then a newline, in human mode. */
  printPieces(pieces) {
    if (!this.json) writeChunks(this.stdout, pieces, '\n');
  }

  /** Start a spinner; returns a progress callback for SidecarClient's onProgress. */
  startProgress(command, label) {
    this.stopProgress();
    const started = Date.now();
    // ora loads only for a terminal: a warm command on the daemon should not pay for a spinner it never shows
    if (this.interactive) this.spinner = require('ora')({ text: label, stream: this.stderr, color: 'blue' }).start();
    return (value) => {
      if (this.json) {
        this.emit('progress', { command, ...value });
        return;
      }
      if (!this.spinner) return;
      this.spinner.text = progressText(label, value, Date.now() - started);
    };
  }

  stopProgress() {
    if (this.spinner) {
      this.spinner.stop();
      this.spinner = null;
    }
  }
}

const CHUNK_CHARS = 1 << 20;

/**
 * Write the strings of `pieces` to `stream` in writes of about 1 MiB, each piece followed by
 * `sep`, the whole followed by `end`: output of any size, never one string (V8 caps a string
 * near 512 MiB; format.test.js checks the size of the writes).
 */
function writeChunks(stream, pieces, end = '', sep = '') {
  let buffer = '';
  for (const piece of pieces) {
    buffer += piece + sep;
    if (buffer.length >= CHUNK_CHARS) {
      stream.write(buffer);
      buffer = '';
    }
  }
  stream.write(buffer + end);
}

/** "Analyzing data.parquet  42% · scan · RSS 1.2 GB · spill 0 B · 3.4s" */
function progressText(label, value, elapsedMs) {
  const parts = [];
  parts.push(typeof value.percent === 'number' ? `${value.percent.toFixed(0)}%` : 'progress unknown');
  if (value.phase) parts.push(value.phase);
  if (value.part && value.parts) parts.push(`part ${value.part}/${value.parts}`);
  if (typeof value.rss_bytes === 'number') parts.push(`RSS ${formatBytes(value.rss_bytes)}`);
  if (typeof value.buffer_bytes === 'number') parts.push(`buffers ${formatBytes(value.buffer_bytes)}`);
  if (typeof value.spill_bytes === 'number') parts.push(`spill ${formatBytes(value.spill_bytes)}`);
  parts.push(`${((value.elapsed_ms ?? elapsedMs) / 1000).toFixed(1)}s`);
  return `${label}  ${parts.join(' · ')}`;
}

/** The facts from error.details worth showing a person, one per line. */
function detailLines(details) {
  const lines = [];
  if (details.flag) lines.push(`Flag: ${details.flag}`);
  if (details.file) lines.push(`File: ${details.file}${details.line ? `:${details.line}` : ''}`);
  if (details.reason) lines.push(`Reason: ${details.reason}`);
  if (details.position !== undefined && details.position !== null) lines.push(`Position: ${details.position}`);
  for (const d of details.diagnostics || []) {
    const where = [d.file, d.line, d.column].filter((x) => x !== undefined && x !== null).join(':');
    lines.push(`${d.severity || 'error'} ${where}${d.path ? ` (${d.path})` : ''}: ${d.message}${d.hint ? ` — ${d.hint}` : ''}`);
  }
  if (details.exit_code !== undefined || details.signal) {
    // WORKER_CRASHED carries the worker's signal (and returncode); SIDECAR_EXITED the sidecar's.
    const who = details.returncode !== undefined ? 'Worker' : 'Sidecar';
    lines.push(`${who}: ${details.signal ? `signal ${details.signal}` : `exit code ${details.exit_code}`}`);
  }
  if (details.stderr_tail) {
    const tail = details.stderr_tail.trim().split('\n').slice(-5);
    if (tail.length && tail[0]) lines.push('Sidecar stderr (last lines):', ...tail.map((l) => `  ${l}`));
  }
  return lines;
}

module.exports = { Reporter, progressText, detailLines, colorLevel, writeChunks };
