/* The dashboard page (browser script, served by lib/web/dashboard.js): the monitor's history
 * first (GET history), then the live samples and alerts (EventSource events). No external request:
 * uPlot comes from the same server. */
(function dashboard() {
  'use strict';

  const MAX_POINTS = 7200;
  const COLORS = { blue: '#4aa3ff', green: '#3ecf8e', yellow: '#f5c542', red: '#ff5c5c', violet: '#b68cff', grey: '#8a94a3', teal: '#2ec4c4' };
  const data = { t: [], rss: [], managed: [], unmanaged: [], limit: [], ceiling: [], used: [], effective: [], budget: [], spilled: [], running: [], queued: [], cpu: [] };
  const alerts = new Map();
  const charts = [];
  let lastAt = 0;
  let windowS = 300;
  let latest = null;
  let gone = null;

  function bytes(n) {
    if (n === null || n === undefined || !Number.isFinite(n)) return '–';
    const units = ['B', 'KB', 'MB', 'GB', 'TB'];
    let v = n;
    let i = 0;
    while (Math.abs(v) >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
    return i === 0 ? `${Math.round(v)} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
  }
  const pct = (part, whole) => (whole > 0 ? `${Math.round((100 * part) / whole)}%` : '–');
  const clock = (ms) => new Date(ms).toLocaleTimeString();
  const sum = (workers, key) => workers.reduce((acc, w) => acc + w[key], 0);

  /** One sample onto the series; older or repeated samples (history, then live) are skipped. */
  function push(sample) {
    if (sample.at_ms <= lastAt) return false;
    lastAt = sample.at_ms;
    const w = sample.workers;
    const m = sample.machine;
    const row = {
      t: sample.at_ms / 1000, rss: sum(w, 'rss_bytes'), managed: sum(w, 'managed_bytes'), unmanaged: sum(w, 'unmanaged_bytes'),
      limit: w.length ? sum(w, 'duckdb_limit_bytes') : null, ceiling: w.length ? sum(w, 'ceiling_bytes') : null,
      used: m.used_memory_bytes, effective: m.effective_memory_bytes, budget: m.machine_budget_bytes,
      spilled: sum(w, 'spilled_bytes'), running: sample.jobs_running, queued: sample.jobs_queued, cpu: m.cpu_percent,
    };
    for (const key of Object.keys(data)) {
      data[key].push(row[key]);
      if (data[key].length > MAX_POINTS) data[key].shift();
    }
    latest = sample;
    return true;
  }

  const byteAxis = { values: (u, vals) => vals.map(bytes), size: 70, stroke: COLORS.grey, grid: { stroke: '#2c3440' } };
  const timeAxis = { stroke: COLORS.grey, grid: { stroke: '#2c3440' } };
  const line = (label, key, stroke, extra = {}) => ({ label, key, stroke, width: 2, value: (u, v) => bytes(v), ...extra });
  const CHARTS = [
    { id: 'chart-memory', series: [
      line('RSS', 'rss', COLORS.blue), line('managed', 'managed', COLORS.green), line('unmanaged', 'unmanaged', COLORS.violet),
      line('DuckDB limit', 'limit', COLORS.yellow, { dash: [6, 4] }), line('ceiling', 'ceiling', COLORS.red, { dash: [6, 4] })] },
    { id: 'chart-machine', series: [
      line('used', 'used', COLORS.blue), line('effective memory', 'effective', COLORS.grey, { dash: [6, 4] }),
      line('job budget', 'budget', COLORS.yellow, { dash: [6, 4] })] },
    { id: 'chart-spill', series: [line('spilled', 'spilled', COLORS.teal, { fill: 'rgba(46,196,196,0.15)' })] },
    { id: 'chart-jobs', axes: [timeAxis, { stroke: COLORS.grey, grid: { stroke: '#2c3440' } }, { side: 1, scale: '%', stroke: COLORS.grey, grid: { show: false }, values: (u, v) => v.map((x) => `${x}%`) }],
      series: [
        { label: 'running', key: 'running', stroke: COLORS.green, width: 2 },
        { label: 'queued', key: 'queued', stroke: COLORS.yellow, width: 2 },
        { label: 'CPU', key: 'cpu', stroke: COLORS.grey, width: 1, scale: '%', value: (u, v) => (v === null ? '–' : `${Math.round(v)}%`) }],
      scales: { '%': { range: [0, 100] } } },
  ];

  function arrays(def) {
    return [data.t, ...def.series.map((s) => data[s.key])];
  }

  function createCharts() {
    for (const def of CHARTS) {
      const root = document.getElementById(def.id);
      const opts = {
        width: Math.max(root.clientWidth, 300), height: 220,
        scales: { x: { time: true }, ...(def.scales || {}) },
        axes: def.axes || [timeAxis, byteAxis],
        series: [{}, ...def.series.map(({ key, ...s }) => s)],
        legend: { live: true },
      };
      const chart = new uPlot(opts, arrays(def), root);
      charts.push({ def, chart, root });
    }
    window.addEventListener('resize', () => { for (const c of charts) c.chart.setSize({ width: Math.max(c.root.clientWidth, 300), height: 220 }); });
  }

  function redrawCharts() {
    const max = data.t.length ? data.t[data.t.length - 1] : Date.now() / 1000;
    for (const { def, chart, root } of charts) {
      chart.setData(arrays(def), true);
      if (windowS > 0 && data.t.length) chart.setScale('x', { min: Math.max(data.t[0], max - windowS), max });
      root.dataset.points = String(data.t.length);
      root.dataset.peak = String(Math.max(0, ...data[def.series[0].key].filter((v) => v !== null)));
    }
  }

  function cell(text, className) {
    const td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function fillTable(id, rows, empty) {
    const body = document.querySelector(`#${id} tbody`);
    body.replaceChildren(...rows);
    if (!rows.length) {
      const tr = document.createElement('tr');
      const td = cell(empty, 'empty');
      td.colSpan = document.querySelectorAll(`#${id} th`).length;
      tr.append(td);
      body.append(tr);
    }
  }

  function renderSummary() {
    if (!latest) return;
    const m = latest.machine;
    const cards = [
      ['memory used', `${bytes(m.used_memory_bytes)} / ${bytes(m.effective_memory_bytes)}`, pct(m.used_memory_bytes, m.effective_memory_bytes)],
      ['job budget', bytes(m.machine_budget_bytes), 'all jobs together'],
      ['CPU', `${Math.round(m.cpu_percent)}%`, 'since the last sample'],
      ['jobs', `${latest.jobs_running} running`, `${latest.jobs_queued} queued`],
      ['spill disk free', bytes(m.spill_free_bytes), 'under the spill directory'],
      ['growth', `${bytes(latest.memory_growth_bytes_per_min)}/min`, 'fastest job, last minute'],
      ['last sample', clock(latest.at_ms), `${data.t.length} points`],
    ];
    document.getElementById('summary').replaceChildren(...cards.map(([label, value, note]) => {
      const div = document.createElement('div');
      div.className = 'card';
      div.innerHTML = '<span></span><b></b><span></span>';
      div.children[0].textContent = label;
      div.children[1].textContent = value;
      div.children[2].textContent = note;
      return div;
    }));
    fillTable('workers', latest.workers.map((w) => {
      const tr = document.createElement('tr');
      tr.append(cell(w.job_id), cell(String(w.pid ?? '–')), cell(`${(w.elapsed_ms / 1000).toFixed(1)} s`), cell(w.query_hash),
        cell(`${bytes(w.rss_bytes)} / ${bytes(w.ceiling_bytes)} (${pct(w.rss_bytes, w.ceiling_bytes)})`),
        cell(`${bytes(w.managed_bytes)} / ${bytes(w.duckdb_limit_bytes)} (${pct(w.managed_bytes, w.duckdb_limit_bytes)})`),
        cell(bytes(w.unmanaged_bytes)), cell(bytes(w.spilled_bytes)));
      return tr;
    }), 'No job running.');
  }

  /** A rule's value in its unit: bytes, bytes per minute, milliseconds or percent. */
  function metricText(metric, v) {
    if (typeof v !== 'number') return String(v);
    if (metric.endsWith('_bytes_per_min')) return `${bytes(v)}/min`;
    if (metric.endsWith('_bytes')) return bytes(v);
    if (metric.endsWith('_ms')) return `${(v / 1000).toFixed(1)} s`;
    return `${Math.round(v * 10) / 10}%`;
  }

  const SEVERITY = ['emergency', 'critical', 'warning', 'info'];
  function renderAlerts() {
    const ordered = [...alerts.values()].sort((a, b) => (a.state === 'resolved') - (b.state === 'resolved')
      || SEVERITY.indexOf(a.severity) - SEVERITY.indexOf(b.severity) || b.at - a.at);
    fillTable('alerts', ordered.map((a) => {
      const tr = document.createElement('tr');
      Object.assign(tr.dataset, { rule: a.rule, state: a.state, severity: a.severity, id: a.id });
      tr.append(cell(clock(a.at)), cell(a.severity + (a.escalated ? ' (escalated)' : ''), `sev-${a.severity}`), cell(a.state, `state-${a.state}`),
        cell(a.rule), cell(a.message), cell(`${metricText(a.metric, a.value)} / ${metricText(a.metric, a.threshold)} (${a.metric})`), cell((a.actions_taken || []).join(', ') || '–'));
      return tr;
    }), 'No alert yet.');
  }

  function setStatus(kind, text) {
    const el = document.getElementById('status');
    el.className = `status ${kind}`;
    el.textContent = text;
  }

  function showBanner(text) {
    const banner = document.getElementById('banner');
    banner.textContent = text;
    banner.hidden = !text;
  }

  function sidecarGone(info) {
    gone = info;
    setStatus('gone', 'sidecar gone');
    showBanner(`The sidecar is gone: ${info.message}. These charts stop here. ${info.hint || ''}`);
  }

  function onAlert(alert) {
    alerts.set(alert.id, alert);
    renderAlerts();
  }

  function connect() {
    const events = new EventSource('events');
    events.addEventListener('open', () => {
      if (gone) return;
      setStatus('live', 'live');
      showBanner('');
    });
    events.addEventListener('metrics', (e) => {
      if (push(JSON.parse(e.data))) { redrawCharts(); renderSummary(); }
    });
    events.addEventListener('alert', (e) => onAlert(JSON.parse(e.data)));
    events.addEventListener('sidecar', (e) => sidecarGone(JSON.parse(e.data)));
    events.addEventListener('error', () => {
      if (gone) return;
      setStatus('lost', 'disconnected');
      showBanner('Lost the connection to `bmad-data monitor --web`: the command stopped or the machine is busy. Retrying every 2 s; run the command again if it stopped.');
    });
  }

  function chooseWindow(button) {
    const started = performance.now();
    for (const b of document.querySelectorAll('#window button')) b.classList.toggle('active', b === button);
    windowS = Number(button.dataset.window);
    redrawCharts();
    requestAnimationFrame(() => { document.body.dataset.lastInteractionMs = String(Math.round(performance.now() - started)); });
  }

  async function start() {
    createCharts();
    for (const b of document.querySelectorAll('#window button')) b.addEventListener('click', () => chooseWindow(b));
    const res = await fetch('history');
    const history = await res.json();
    if (history.sidecar) sidecarGone(history.sidecar);
    else {
      history.samples.forEach(push);
      for (const a of [...history.alerts, ...history.active]) alerts.set(a.id, a);
      document.getElementById('alerting').textContent = history.alerting ? `samples every ${history.interval_ms} ms` : 'alerting is off (duckdb_alerting)';
      redrawCharts();
      renderSummary();
    }
    renderAlerts();
    connect();
  }

  start().catch((err) => showBanner(`The dashboard could not start: ${err.message}`));
}());
