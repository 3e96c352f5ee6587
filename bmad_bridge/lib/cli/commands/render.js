'use strict';
/** Printing `query.run` and `dataset.analyze` results as a table, JSON or CSV on stdout. */
const { tableLines, csvLines, jsonPieces, formatBytes, formatMs } = require('../format');

/** A query result: {columns: [{name, type}], rows: [[...]]}. */
function renderResult(data, format, reporter) {
  const headers = (data.columns || []).map((c) => c.name);
  // Written a batch of rows at a time: no result is too big to print (cli-output-size.test.js).
  if (format === 'json') {
    reporter.printPieces(jsonPieces(data, data.rows, { indent: 2 }));
  } else if (format === 'csv') {
    reporter.printLines(csvLines(headers, data.rows || []));
  } else if (headers.length > 0) {
    reporter.printLines(tableLines(headers, data.rows || [], { paint: reporter.out.bold }));
  }
}

const STAT_COLUMNS = ['name', 'type', 'null_count', 'approx_distinct', 'min', 'max', 'mean', 'std'];

function round(value) {
  return typeof value === 'number' && !Number.isInteger(value) ? Number(value.toPrecision(6)) : value;
}

/** The per-column statistics of an analysis as header + rows. */
function analysisRows(data) {
  return (data.columns || []).map((c) => STAT_COLUMNS.map((k) => round(c[k] === undefined ? null : c[k])));
}

function renderAnalysis(data, format, reporter) {
  if (format === 'json') {
    reporter.print(JSON.stringify(data, null, 2));
    return;
  }
  if (format === 'csv') {
    reporter.printLines(csvLines(STAT_COLUMNS, analysisRows(data)));
    return;
  }
  const c = reporter.out;
  reporter.print(c.green('\n📊 Analysis Results'));
  reporter.print('━'.repeat(60));
  const files = Array.isArray(data.files) ? data.files.length : data.files;
  reporter.print(`Format: ${c.cyan(data.format ?? 'n/a')}   Files: ${c.cyan(files ?? 'n/a')}   Size: ${c.cyan(formatBytes(data.bytes, { both: true }))}`);
  const exactness = data.row_count_exact ? 'exact' : 'estimated';
  reporter.print(`Rows: ${c.cyan(data.row_count === null || data.row_count === undefined ? 'n/a' : Number(data.row_count).toLocaleString('en-US'))} (${exactness})`);
  if (data.stats && data.stats.elapsed_ms !== undefined) reporter.print(`Time: ${c.cyan(formatMs(data.stats.elapsed_ms))}`);
  reporter.print('');
  reporter.printLines(tableLines(STAT_COLUMNS, analysisRows(data), { paint: c.bold, maxCell: 28 }));
}

module.exports = { renderResult, renderAnalysis, analysisRows, STAT_COLUMNS };
