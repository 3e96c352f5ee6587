'use strict';
/**
 * What `bmad-data monitor` draws in a terminal: one frame (a list of lines no wider than the
 * terminal) from the monitor's latest sample, the jobs it knows by name and the alerts firing.
 * Pure functions, no I/O; TerminalScreen (below) is the one piece that writes, and it redraws a
 * frame in place with a single write, so nothing flickers.
 */
const { formatBytes, formatMs, truncate, width } = require('./format');

const SEVERITY_ORDER = ['emergency', 'critical', 'warning', 'info'];

/**
 * A bar of `cells` characters filled to value/max, with `│` at `mark` (another value, e.g. the
 * budget) when it falls inside.
 *   bar(50, 100, 10)      -> "█████░░░░░"
 *   bar(50, 100, 10, 80)  -> "█████░░░│░"
 */
function bar(value, max, cells, mark = null) {
  const n = Math.max(cells, 1);
  const fill = max > 0 ? Math.min(Math.round((value / max) * n), n) : 0;
  const chars = Array.from({ length: n }, (_, i) => (i < fill ? '█' : '░'));
  if (mark !== null && max > 0 && mark < max) chars[Math.min(Math.floor((mark / max) * n), n - 1)] = '│';
  return chars.join('');
}

/** "42%" of a part in a whole; "n/a" without a whole. percent(1, 4) -> "25%". */
function percent(part, whole) {
  return whole > 0 ? `${Math.round((100 * part) / whole)}%` : 'n/a';
}

/** Clock time of a wall-clock ms timestamp, as HH:MM:SS in local time. */
function clock(atMs) {
  return new Date(atMs).toTimeString().slice(0, 8);
}

/**
 * A line made of segments, each a string or [style, text], cut to `cols` display columns and
 * painted with `paint[style]` afterwards (so colour codes never count against the width).
 */
function fit(segments, cols, paint = {}) {
  let room = cols;
  let out = '';
  for (const seg of segments) {
    if (room <= 0) break;
    const [style, text] = typeof seg === 'string' ? [null, seg] : seg;
    const cut = width(text) > room ? truncate(text, room) : text;
    room -= width(cut);
    out += style && paint[style] ? paint[style](cut) : cut;
  }
  return out;
}

/** Named jobs (system.resources running_jobs, with jobs.status parts) by the pid of their worker. */
function namedByPid(named) {
  const map = new Map();
  for (const job of named || []) if (job.worker_pid !== null && job.worker_pid !== undefined) map.set(job.worker_pid, job);
  return map;
}

function workerLines(w, named, barCells) {
  const title = [['title', `Job ${w.job_id}`], ` · pid ${w.pid ?? '-'} · ${formatMs(w.elapsed_ms)} · query ${w.query_hash}`];
  const job = named.get(w.pid);
  if (job) {
    title.push(' · ', ['title', job.job_id]);
    if (job.parts_total) title.push(` part ${Math.min(job.parts_done + 1, job.parts_total)}/${job.parts_total} (${job.parts_done} done)`);
  }
  const rssLevel = w.ceiling_bytes > 0 && w.rss_bytes / w.ceiling_bytes >= 0.9 ? 'bad' : 'bar';
  const managedLevel = w.duckdb_limit_bytes > 0 && w.managed_bytes / w.duckdb_limit_bytes >= 0.9 ? 'warn' : 'bar';
  return [
    title,
    ['  RSS      ', [rssLevel, bar(w.rss_bytes, w.ceiling_bytes, barCells)],
      ` ${formatBytes(w.rss_bytes)} of ceiling ${formatBytes(w.ceiling_bytes)} (${percent(w.rss_bytes, w.ceiling_bytes)})`],
    ['  managed  ', [managedLevel, bar(w.managed_bytes, w.duckdb_limit_bytes, barCells)],
      ` ${formatBytes(w.managed_bytes)} of DuckDB limit ${formatBytes(w.duckdb_limit_bytes)} (${percent(w.managed_bytes, w.duckdb_limit_bytes)})`],
    [['dim', `  unmanaged ${formatBytes(w.unmanaged_bytes)} · spilled ${formatBytes(w.spilled_bytes)}`]],
  ];
}

function alertLine(a) {
  const style = a.severity === 'info' ? 'dim' : a.severity === 'warning' ? 'warn' : 'bad';
  const state = a.state === 'resolved' ? 'resolved' : 'firing';
  return [
    '  ', [a.state === 'resolved' ? 'ok' : style, `● ${a.severity.toUpperCase()} ${state}`], ` ${a.rule}  `, a.message,
    ['dim', `  ${clock(a.at)}${a.actions_taken && a.actions_taken.length ? ` · actions: ${a.actions_taken.join(', ')}` : ''}`],
  ];
}

/** Firing alerts first, the most severe first, then the newest. */
function orderAlerts(alerts) {
  const rank = (a) => (a.state === 'resolved' ? 10 : 0) + Math.max(SEVERITY_ORDER.indexOf(a.severity), 0);
  return [...alerts].sort((x, y) => rank(x) - rank(y) || y.at - x.at);
}

/**
 * One frame: `state` is {sample, alerts (firing and recently resolved), named, intervalS, note};
 * `cols` x `rows` is the terminal. Returns the lines, at most rows - 1 of them (the cursor needs
 * the last row), each at most `cols` columns once painted.
 */
function frameLines(state, { cols = 80, rows = 24, paint = {} } = {}) {
  const { sample } = state;
  const m = sample.machine;
  const barCells = Math.max(Math.min(cols - 70, 40), 6);
  const body = [
    [['title', 'bmad-data monitor'], `  ${clock(sample.at_ms)} · every ${state.intervalS}s · Ctrl+C stops`,
      ...(state.note ? ['  ', ['bad', state.note]] : [])],
    ['Machine  ', ['bar', bar(m.used_memory_bytes, m.effective_memory_bytes, barCells, m.machine_budget_bytes)],
      ` ${formatBytes(m.used_memory_bytes)} of ${formatBytes(m.effective_memory_bytes)} used (${percent(m.used_memory_bytes, m.effective_memory_bytes)})`,
      ['dim', ` · │ job budget ${formatBytes(m.machine_budget_bytes)}`]],
    [`         CPU ${Math.round(m.cpu_percent)}% · spill disk free ${formatBytes(m.spill_free_bytes)} · `,
      `jobs ${sample.jobs_running} running, ${sample.jobs_queued} queued · growth ${formatBytes(sample.memory_growth_bytes_per_min)}/min`],
  ];
  const named = namedByPid(state.named);
  const jobs = sample.workers.length === 0 ? [[['dim', 'No job running.']]]
    : sample.workers.flatMap((w) => workerLines(w, named, barCells));
  const alerts = orderAlerts(state.alerts);
  const firing = alerts.filter((a) => a.state !== 'resolved').length;
  const alertBlock = [[['title', `Alerts: ${firing} firing`]], ...alerts.map(alertLine)];
  // Whatever does not fit the terminal's height is counted, not drawn: jobs first, then alerts.
  const room = Math.max(rows - 1, 4);
  const fixed = body.length + 1;
  let jobRoom = Math.min(jobs.length, Math.max(room - fixed - Math.min(alertBlock.length, 4), 1));
  let alertRoom = Math.min(alertBlock.length, room - fixed - jobRoom);
  if (alertRoom < 1) { alertRoom = 1; jobRoom = Math.max(room - fixed - 1, 1); }
  const lines = [...body, ...jobs.slice(0, jobRoom)];
  if (jobRoom < jobs.length) lines[lines.length - 1] = [['dim', `… ${jobs.length - jobRoom + 1} more lines of jobs (a taller terminal shows them)`]];
  lines.push(...alertBlock.slice(0, alertRoom));
  if (alertRoom < alertBlock.length) lines[lines.length - 1] = [['dim', `… ${alertBlock.length - alertRoom + 1} more alerts`]];
  return lines.slice(0, room).map((segs) => fit(segs, cols, paint));
}

/**
 * Draws frames in place on a TTY: the first frame hides the cursor, each next one moves back up
 * over the last and rewrites it line by line (erasing what is left of each line), all in one
 * write. A resize clears the screen once, since the terminal has re-wrapped the old frame.
 */
class TerminalScreen {
  /** `redraw` is called after a resize, to draw the frame again at the new size at once. */
  constructor(stream, redraw = () => {}) {
    this.stream = stream;
    this.drawn = 0;
    this.onResize = () => { this.stream.write('\x1b[2J\x1b[H'); this.drawn = 0; redraw(); };
    stream.on('resize', this.onResize);
  }

  get size() {
    return { cols: this.stream.columns || 80, rows: this.stream.rows || 24 };
  }

  draw(lines) {
    const up = this.drawn > 0 ? `\x1b[${this.drawn}F` : '\x1b[?25l';
    this.stream.write(`${up}${lines.map((l) => `${l}\x1b[K\n`).join('')}\x1b[J`);
    this.drawn = lines.length;
  }

  close() {
    this.stream.removeListener('resize', this.onResize);
    this.stream.write('\x1b[?25h');
  }
}

module.exports = { frameLines, bar, fit, percent, orderAlerts, TerminalScreen };
