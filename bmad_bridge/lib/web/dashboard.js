'use strict';
/**
 * The `bmad-data monitor --web` dashboard: a local HTTP server (node:http only) on 127.0.0.1 that
 * serves one page, its uPlot charts (from node_modules, never a CDN), the monitor's history as
 * JSON, and the live samples and alerts as Server-Sent Events.
 *
 * Every path starts with a random token (`/<token>/`), so another local user or a web page cannot
 * read it by guessing the port; a Host header other than 127.0.0.1/localhost is refused (DNS
 * rebinding); the Content-Security-Policy allows this origin only, so the page makes no external
 * request. When the sidecar exits, every open page is told (`event: sidecar`) and new ones too.
 */
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { EventEmitter } = require('node:events');
const { BmadDataError } = require('../errors');
const { MonitorFeed } = require('../cli/monitor-feed');

const ASSETS = path.join(__dirname, 'assets');
const STATIC = {
  '': [path.join(ASSETS, 'index.html'), 'text/html; charset=utf-8'],
  'app.js': [path.join(ASSETS, 'app.js'), 'text/javascript; charset=utf-8'],
  'style.css': [path.join(ASSETS, 'style.css'), 'text/css; charset=utf-8'],
  'uplot.js': [require.resolve('uplot/dist/uPlot.iife.min.js'), 'text/javascript; charset=utf-8'],
  'uplot.css': [require.resolve('uplot/dist/uPlot.min.css'), 'text/css; charset=utf-8'],
};
const SECURITY = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};
const HEARTBEAT_MS = 15000;

class Dashboard extends EventEmitter {
  constructor(client, { intervalMs = 1000 } = {}) {
    super();
    this.client = client;
    this.intervalMs = intervalMs;
    this.token = crypto.randomBytes(16).toString('hex');
    this.feed = new MonitorFeed(client);
    this.streams = new Set();
    this.gone = null;
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err) => this.send(res, 500, { error: { code: err.code || 'INTERNAL', message: err.message } }));
    });
    this.heartbeat = setInterval(() => this.broadcast(': heartbeat\n\n'), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** Listen on host:port (0: a free port) and subscribe to the monitor. */
  async listen(host, port) {
    this.feed.on('sample', (sample) => this.broadcast(sse('metrics', sample)));
    this.feed.on('alert', (alert) => this.broadcast(sse('alert', alert)));
    this.feed.on('gone', (err) => {
      this.gone = { state: 'gone', code: err.code, message: err.message, hint: err.hint };
      this.broadcast(sse('sidecar', this.gone));
      this.emit('gone', err);
    });
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => { this.server.removeListener('error', reject); resolve(); });
    }).catch((err) => { throw listenError(err, host, port); });
    this.port = this.server.address().port;
    this.host = host;
    this.url = `http://${host}:${this.port}/${this.token}/`;
    this.subscription = await this.feed.open({ intervalMs: this.intervalMs });
    return this;
  }

  allowedHost(header) {
    return header === `${this.host}:${this.port}` || header === `localhost:${this.port}`;
  }

  async handle(req, res) {
    if (!this.allowedHost(req.headers.host)) return this.send(res, 403, { error: { code: 'ACCESS_DENIED', message: 'this dashboard answers on 127.0.0.1 and localhost only' } });
    const url = new URL(req.url, 'http://local');
    const prefix = `/${this.token}/`;
    if (!url.pathname.startsWith(prefix)) return this.send(res, 404, { error: { code: 'NOT_FOUND', message: 'no such page: open the URL bmad-data monitor --web printed, with its token' } });
    if (req.method !== 'GET') return this.send(res, 405, { error: { code: 'METHOD_NOT_ALLOWED', message: 'GET only' } });
    const name = url.pathname.slice(prefix.length);
    if (name === 'events') return this.stream(req, res);
    if (name === 'history') return this.history(res);
    const asset = STATIC[name];
    if (!asset) return this.send(res, 404, { error: { code: 'NOT_FOUND', message: `no such file: ${name}` } });
    res.writeHead(200, { ...SECURITY, 'Content-Type': asset[1] });
    fs.createReadStream(asset[0]).pipe(res);
    return undefined;
  }

  /** The samples and alerts the sidecar kept, for the page to draw before the live ones come. */
  async history(res) {
    if (this.gone) return this.send(res, 503, { sidecar: this.gone });
    const [history, snapshot] = await Promise.all([this.feed.history({}, { timeoutMs: 10000 }), this.feed.snapshot({ timeoutMs: 10000 })]);
    return this.send(res, 200, {
      samples: history.samples, alerts: history.alerts, active: snapshot.alerts, capacity: history.capacity,
      interval_ms: this.subscription.interval_ms, alerting: this.subscription.alerting,
      diagnostics: this.subscription.diagnostics,
    });
  }

  stream(req, res) {
    res.writeHead(200, { ...SECURITY, 'Content-Type': 'text/event-stream', Connection: 'keep-alive' });
    res.write(`retry: 2000\n\n`);
    if (this.gone) res.write(sse('sidecar', this.gone));
    this.streams.add(res);
    req.on('close', () => this.streams.delete(res));
  }

  broadcast(text) {
    for (const res of this.streams) res.write(text);
  }

  send(res, status, body) {
    if (res.headersSent) return res.end();
    res.writeHead(status, { ...SECURITY, 'Content-Type': 'application/json; charset=utf-8' });
    return res.end(JSON.stringify(body));
  }

  /** Stop: unsubscribe, end the event streams, close the server. */
  async close() {
    clearInterval(this.heartbeat);
    await this.feed.close();
    for (const res of this.streams) res.end();
    this.streams.clear();
    await new Promise((resolve) => this.server.close(resolve));
    this.server.closeAllConnections();
  }
}

/** One Server-Sent Event: `event: name` and the JSON of `data` on one line. */
function sse(event, data) {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

function listenError(err, host, port) {
  if (err.code === 'EADDRINUSE') {
    return new BmadDataError('INVALID_PARAMS', `port ${port} on ${host} is in use`, {
      hint: 'Pick another --port, or leave --port out to take a free one.', details: { port, errno: err.code },
    });
  }
  if (err.code === 'EACCES') {
    return new BmadDataError('ACCESS_DENIED', `port ${port} on ${host} needs privileges this user lacks`, {
      hint: 'Pick a --port above 1023, or leave --port out to take a free one.', details: { port, errno: err.code },
    });
  }
  return err;
}

/**
 * Start the dashboard on `client`'s sidecar; resolves with the Dashboard (its `url` holds the token).
 * @param {{client: object, host?: string, port?: number, intervalMs?: number}} options
 */
async function startDashboard({ client, host = '127.0.0.1', port = 0, intervalMs = 1000 }) {
  const dashboard = new Dashboard(client, { intervalMs });
  try {
    return await dashboard.listen(host, port);
  } catch (err) {
    await dashboard.close().catch(() => {});
    throw err;
  }
}

module.exports = { startDashboard, Dashboard, sse };
