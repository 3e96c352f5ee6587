'use strict';
/**
 * `bmad-data monitor`: the sidecar's monitor, live. On a terminal, one frame redrawn in place
 * (machine memory against the job budget, each running job's RSS against its ceiling and DuckDB's
 * managed memory against its limit, spill, the alerts firing); with --json or a pipe, one JSON
 * line per sample and per alert. `--once` shows the state now; `--web` serves the same as a
 * dashboard on 127.0.0.1 (lib/web/dashboard.js). Ctrl+C stops; so does the sidecar's exit.
 */
const { BmadDataError } = require('../../errors');
const { runCommand } = require('../session');
const { MonitorFeed } = require('../monitor-feed');
const { frameLines, TerminalScreen } = require('../monitor-view');
const { passedOptions, parseAtLeast, parseBetween, parseSeconds } = require('./common');

const RESOLVED_SHOWN_MS = 60000;
const RESOLVED_SHOWN = 5;

function register(program) {
  program
    .command('monitor')
    .description('Live view of memory, jobs and alerts (Ctrl+C stops); --web serves it as a dashboard')
    .option('-i, --interval <seconds>', 'seconds between samples (at least 0.1, e.g. 1 or 0.5)', parseSeconds(0.1), 1)
    .option('-n, --count <n>', 'stop after this many samples (at least 1); without it, sample until Ctrl+C',
      parseAtLeast(1, 'omit --count to sample until Ctrl+C'))
    .option('--once', 'show the state now (the latest sample and the alerts firing) and stop')
    .option('-w, --web', 'serve a live dashboard on 127.0.0.1 and print its URL (Ctrl+C stops)')
    .option('--port <n>', 'port for --web (default: a free one)', parseBetween(1, 65535))
    .action(async (opts, cmd) => {
      await runCommand('monitor', cmd.optsWithGlobals(), (ctx) => handle(ctx, opts), {
        options: passedOptions(cmd),
        validate: () => validate(opts),
      });
    });
}

function validate(opts) {
  if (opts.port !== undefined && !opts.web) {
    throw new BmadDataError('USAGE', '--port is the dashboard\'s port and needs --web', { hint: 'Add --web, or leave --port out.' });
  }
  if (opts.web && opts.count !== undefined) {
    throw new BmadDataError('USAGE', '--web serves the dashboard until Ctrl+C: it does not go with --count', {
      hint: 'Leave --count out with --web, or drop --web for n samples in the terminal.',
    });
  }
  if (opts.once && (opts.web || opts.count !== undefined)) {
    throw new BmadDataError('USAGE', '--once shows one state and stops: it does not go with --web or --count', {
      hint: 'Use --once alone, or --count <n> for n samples.',
    });
  }
}

async function handle(ctx, opts) {
  if (opts.web) {
    const { serveDashboard } = require('../../web/serve'); // lazy: the terminal view does not need http
    return serveDashboard(ctx, opts);
  }
  const outcome = await watch(ctx, opts);
  ctx.reporter.result('monitor', outcome, (d, r) => r.success(`Monitoring stopped (${d.stopped}, ${d.samples} samples)`));
  return outcome;
}

/** The alerts to show: every firing one, and the last few resolved within the minute. */
function shownAlerts(alerts, nowMs) {
  const all = [...alerts.values()];
  const resolved = all.filter((a) => a.state === 'resolved' && nowMs - a.at < RESOLVED_SHOWN_MS)
    .sort((x, y) => y.at - x.at).slice(0, RESOLVED_SHOWN);
  return [...all.filter((a) => a.state !== 'resolved'), ...resolved];
}

function painter(chalk) {
  return { title: chalk.bold, bar: chalk.blue, warn: chalk.yellow, bad: chalk.red, ok: chalk.green, dim: chalk.gray };
}

/**
 * Watch until Ctrl+C, --count samples, or the sidecar's exit (which throws SIDECAR_EXITED).
 * `out` is where frames or JSON lines go (stdout); a TTY gets frames unless --json.
 */
async function watch({ client, reporter, signal }, opts, out = process.stdout) {
  const feed = new MonitorFeed(client);
  const mode = reporter.json ? 'json' : out.isTTY ? 'tty' : 'lines';
  const line = (type, payload) => {
    if (mode === 'json') reporter.emit(type, { command: 'monitor', ...payload });
    else out.write(`${JSON.stringify({ type, command: 'monitor', ...payload })}\n`);
  };
  const state = { sample: null, alerts: new Map(), named: [], intervalS: opts.interval, note: null };
  const paint = painter(reporter.out);
  const redraw = () => {
    if (!screen || !state.sample) return;
    const view = { ...state, alerts: shownAlerts(state.alerts, Date.now()) };
    screen.draw(frameLines(view, { ...screen.size, paint }));
  };
  const screen = mode === 'tty' ? new TerminalScreen(out, redraw) : null;
  const onAlert = (alert) => {
    state.alerts.set(alert.id, alert);
    if (mode === 'tty') return redraw();
    line('alert', alert);
    if (mode === 'lines') {
      const text = `${alert.severity} alert ${alert.rule} ${alert.state}: ${alert.message}`;
      if (alert.state === 'resolved') reporter.info(text); else reporter.warn(text);
    }
    return undefined;
  };
  let samples = 0;
  try {
    const snap = await feed.snapshot({ signal });
    for (const alert of snap.alerts) state.alerts.set(alert.id, alert);
    state.sample = snap.metrics;
    if (opts.once) {
      if (mode === 'tty') state.named = await feed.namedJobs({ signal });
      if (mode === 'tty') redraw(); else line('sample', snap.metrics);
      if (mode !== 'tty') for (const alert of snap.alerts) line('alert', alert);
      return { stopped: 'once', samples: 1 };
    }
    redraw();
    const stopped = await new Promise((resolve, reject) => {
      let chain = Promise.resolve();
      const onAbort = () => resolve('interrupted');
      signal.addEventListener('abort', onAbort, { once: true });
      const finish = (fn) => (value) => { signal.removeEventListener('abort', onAbort); fn(value); };
      const done = finish(resolve);
      const fail = finish(reject);
      // One sample at a time, in order: the named jobs are looked up before the frame is drawn.
      feed.on('sample', (sample) => {
        chain = chain.then(async () => {
          if (signal.aborted || (opts.count && samples >= opts.count)) return;
          samples += 1;
          state.sample = sample;
          if (mode === 'tty') {
            if (sample.workers.length) state.named = await feed.namedJobs().catch(() => state.named);
            redraw();
          } else {
            line('sample', sample);
          }
          if (opts.count && samples >= opts.count) done('count reached');
        }).catch(fail);
      });
      feed.on('alert', onAlert);
      feed.on('gone', (err) => {
        state.note = 'the sidecar is gone';
        redraw();
        fail(err);
      });
      feed.open({ intervalMs: opts.interval * 1000, signal }).catch(fail);
    });
    return { stopped, samples };
  } finally {
    if (screen) screen.close();
    await feed.close();
  }
}

module.exports = { register, watch, shownAlerts };
