'use strict';
/**
 * Text shapes for results: sizes, plain tables, CSV. Pure functions, no I/O.
 */

const DECIMAL = ['B', 'KB', 'MB', 'GB', 'TB'];
const BINARY = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

function scale(n, base, units) {
  let i = 0;
  let v = n;
  while (Math.abs(v) >= base && i < units.length - 1) {
    v /= base;
    i += 1;
  }
  return i === 0 ? `${v} ${units[0]}` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/**
 * Bytes as a person reads them; `both` adds the binary unit, as DuckDB distinguishes them.
 *   formatBytes(1073741824)               -> "1.07 GB"
 *   formatBytes(1073741824, {both: true}) -> "1.07 GB (1.00 GiB)"
 */
function formatBytes(n, { both = false } = {}) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return 'n/a';
  const dec = scale(n, 1000, DECIMAL);
  return both && n >= 1000 ? `${dec} (${scale(n, 1024, BINARY)})` : dec;
}

/** A cell as text: null shows as NULL, objects as compact JSON. */
function cellText(value) {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

const WIDE = [[0x1100, 0x115f], [0x2e80, 0xa4cf], [0xac00, 0xd7a3], [0xf900, 0xfaff], [0xfe30, 0xfe4f],
  [0xff00, 0xff60], [0xffe0, 0xffe6], [0x1f300, 0x1faff], [0x20000, 0x3fffd]];

/** Columns one character takes: 0 for controls and combining marks, 2 for CJK and most emoji. */
function charWidth(cp) {
  if (cp < 32 || (cp >= 0x300 && cp <= 0x36f) || cp === 0xfe0f || cp === 0x200d) return 0;
  if (cp < 0x1100) return 1;
  return WIDE.some(([lo, hi]) => cp >= lo && cp <= hi) ? 2 : 1;
}

/** Display width, counting wide characters (CJK, most emoji) as two columns. */
function width(text) {
  if (/^[\x20-\x7e]*$/.test(text)) return text.length; // plain ASCII: the common case, fast
  let w = 0;
  for (const ch of text) w += charWidth(ch.codePointAt(0));
  return w;
}

function truncate(text, max) {
  if (width(text) <= max) return text;
  let out = '';
  let w = 0;
  for (const ch of text) {
    w += charWidth(ch.codePointAt(0));
    if (w > max - 1) break;
    out += ch;
  }
  return `${out}…`;
}

/**
 * A boxed table, line by line, so that a table of any size is written without ever being one
 * string. `headers` are strings, `rows` arrays of values; numbers align right. `paint` colours
 * the header (identity by default). Cells wider than maxCell are cut with "…".
 */
function* tableLines(headers, rows, { maxCell = 40, paint = (s) => s } = {}) {
  const cell = (v) => truncate(cellText(v), maxCell);
  const heads = headers.map((h) => truncate(String(h), maxCell));
  // A loop, not Math.max(...cells): spreading one argument per row overflows the call stack
  // past ~120k rows (format.test.js renders 300k). Cells are made twice rather than kept: a
  // million rows of kept strings cost more in garbage collection than making them again.
  const widths = heads.map((h) => width(h));
  for (const row of rows) {
    for (let i = 0; i < widths.length; i += 1) widths[i] = Math.max(widths[i], width(cell(row[i])));
  }
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => r[i] === null || typeof r[i] === 'number'));
  const pad = (s, i) => {
    const gap = ' '.repeat(widths[i] - width(s));
    return numeric[i] ? gap + s : s + gap;
  };
  const line = (l, m, r) => l + widths.map((w) => '─'.repeat(w + 2)).join(m) + r;
  yield line('┌', '┬', '┐');
  yield `│ ${heads.map((h, i) => paint(pad(h, i))).join(' │ ')} │`;
  yield line('├', '┼', '┤');
  for (const row of rows) yield `│ ${widths.map((_, i) => pad(cell(row[i]), i)).join(' │ ')} │`;
  yield line('└', '┴', '┘');
}

/** tableLines as one string, for small tables (status, convert). */
function renderTable(headers, rows, options) {
  return [...tableLines(headers, rows, options)].join('\n');
}

/** RFC 4180 CSV, line by line: quote fields holding a comma, quote, CR or LF; NULL is an empty field. */
function* csvLines(headers, rows) {
  const field = (v) => {
    if (v === null || v === undefined) return '';
    const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  yield headers.map(field).join(',');
  for (const r of rows) yield r.map(field).join(',');
}

/** csvLines as one string, for small results. */
function toCsv(headers, rows) {
  return [...csvLines(headers, rows)].join('\n');
}

/**
 * JSON text of `value` in pieces: the array `rows` inside it (found by identity) is written a
 * batch of rows at a time, so a result of any size never becomes one string. With `indent`,
 * the text is pretty-printed with one row per line.
 *   [...jsonPieces({a: 1, rows: [[1], [2]]}, [[1], [2]])].join('') -> '{"a":1,"rows":[[1],[2]]}'
 */
function* jsonPieces(value, rows, { indent = 0, batch = 2000 } = {}) {
  if (!Array.isArray(rows)) {
    yield JSON.stringify(value, null, indent || undefined);
    return;
  }
  const mark = `\u0000rows-${process.pid}-${Math.random()}`;
  const text = JSON.stringify(value, (key, v) => (v === rows ? mark : v), indent || undefined);
  const at = text.indexOf(JSON.stringify(mark));
  if (at < 0) {
    yield text;
    return;
  }
  const lineStart = text.lastIndexOf('\n', at) + 1;
  const pad = indent ? ' '.repeat(text.slice(lineStart).search(/\S/)) : '';
  const [open, sep, close] = indent && rows.length ? ['[\n', ',\n', `\n${pad}]`] : ['[', ',', ']'];
  const rowPad = indent ? pad + ' '.repeat(indent) : '';
  yield text.slice(0, at) + open;
  for (let i = 0; i < rows.length; i += batch) {
    const chunk = rows.slice(i, i + batch).map((r) => rowPad + JSON.stringify(r)).join(sep);
    yield i + batch < rows.length ? chunk + sep : chunk;
  }
  yield close + text.slice(at + JSON.stringify(mark).length);
}

/** Milliseconds as "850 ms" or "12.3 s". */
function formatMs(ms) {
  if (typeof ms !== 'number') return 'n/a';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

module.exports = { formatBytes, renderTable, tableLines, toCsv, csvLines, jsonPieces, cellText, width, truncate, formatMs };
