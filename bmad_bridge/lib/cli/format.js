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

/** Display width, counting wide characters (CJK, most emoji) as two columns. */
function width(text) {
  let w = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0);
    if (cp < 32 || (cp >= 0x300 && cp <= 0x36f) || cp === 0xfe0f || cp === 0x200d) continue;
    w += cp >= 0x1100 && (cp <= 0x115f || (cp >= 0x2e80 && cp <= 0xa4cf) || (cp >= 0xac00 && cp <= 0xd7a3)
      || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60)
      || (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1faff) || (cp >= 0x20000 && cp <= 0x3fffd)) ? 2 : 1;
  }
  return w;
}

function truncate(text, max) {
  if (width(text) <= max) return text;
  let out = '';
  for (const ch of text) {
    if (width(out + ch) > max - 1) break;
    out += ch;
  }
  return `${out}…`;
}

/**
 * A boxed table. `headers` are strings, `rows` arrays of values; numbers align right.
 * `paint` colours the header (identity by default). Cells wider than maxCell are cut with "…".
 */
function renderTable(headers, rows, { maxCell = 40, paint = (s) => s } = {}) {
  const text = rows.map((row) => row.map((v) => truncate(cellText(v), maxCell)));
  const heads = headers.map((h) => truncate(String(h), maxCell));
  // A loop, not Math.max(...cells): spreading one argument per row overflows the call stack
  // past ~120k rows (format.test.js renders 300k).
  const widths = heads.map((h) => width(h));
  for (const r of text) {
    for (let i = 0; i < widths.length; i += 1) widths[i] = Math.max(widths[i], width(r[i] ?? ''));
  }
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => r[i] === null || typeof r[i] === 'number'));
  const pad = (s, i) => {
    const gap = ' '.repeat(widths[i] - width(s));
    return numeric[i] ? gap + s : s + gap;
  };
  const line = (l, m, r) => l + widths.map((w) => '─'.repeat(w + 2)).join(m) + r;
  const out = [line('┌', '┬', '┐')];
  out.push(`│ ${heads.map((h, i) => paint(pad(h, i))).join(' │ ')} │`);
  out.push(line('├', '┼', '┤'));
  for (const r of text) out.push(`│ ${r.map((c, i) => pad(c, i)).join(' │ ')} │`);
  out.push(line('└', '┴', '┘'));
  return out.join('\n');
}

/** RFC 4180 CSV: quote fields holding a comma, quote, CR or LF; NULL is an empty field. */
function toCsv(headers, rows) {
  const field = (v) => {
    if (v === null || v === undefined) return '';
    const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [headers, ...rows].map((r) => r.map(field).join(',')).join('\n');
}

/** Milliseconds as "850 ms" or "12.3 s". */
function formatMs(ms) {
  if (typeof ms !== 'number') return 'n/a';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

module.exports = { formatBytes, renderTable, toCsv, cellText, width, formatMs };
