'use strict';
/**
 * `bmad-data monitor --web`: start the dashboard, say where it is, serve until Ctrl+C. When the
 * sidecar exits the page says so and the command keeps serving it (the terminal says so too),
 * so whoever looks at the page learns what happened; Ctrl+C then stops.
 */
const { startDashboard } = require('./dashboard');

async function serveDashboard({ client, reporter, signal }, opts) {
  const dashboard = await startDashboard({ client, port: opts.port ?? 0, intervalMs: opts.interval * 1000 });
  try {
    if (reporter.json) reporter.emit('dashboard', { command: 'monitor', url: dashboard.url, port: dashboard.port });
    else {
      reporter.info(`📊 Dashboard of the sidecar's monitor (Ctrl+C stops):`);
      reporter.print(dashboard.url);
    }
    dashboard.on('gone', (err) => reporter.warn(`${err.message}; the dashboard shows it. Ctrl+C stops the dashboard.`, { code: err.code }));
    if (!signal.aborted) await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
  } finally {
    await dashboard.close();
  }
  reporter.result('monitor', { stopped: 'interrupted', url: dashboard.url }, (d, r) => r.success('Dashboard stopped'));
}

module.exports = { serveDashboard };
