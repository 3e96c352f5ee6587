'use strict';
/**
 * The sidecar's monitor as a stream of events, for the terminal view and the web dashboard alike:
 * one `monitor.subscribe`, its `monitor/metrics` and `monitor/alert` notifications, and the
 * sidecar's unexpected exit.
 *
 * Events: 'sample' (MetricsSample), 'alert' (AlertEvent), 'gone' (BmadDataError SIDECAR_EXITED).
 */
const { EventEmitter } = require('node:events');
const { BmadDataError } = require('../errors');

/** The error that ends a monitor when its sidecar exits: the exit as the client reported it. */
function sidecarGone(info) {
  const how = info.signal ? `was killed by ${info.signal}` : `exited with code ${info.exit_code}`;
  return new BmadDataError('SIDECAR_EXITED', `the sidecar ${how}; there are no more samples`, {
    hint: 'Run the monitor again to start a new sidecar; if it stops again, `bmad-data doctor` says why.',
    retryable: true,
    details: info,
  });
}

class MonitorFeed extends EventEmitter {
  /** @param {import('../client').SidecarClient} client a started client */
  constructor(client) {
    super();
    this.client = client;
    this.subscription = null;
    this.gone = null;
    this.onMetrics = (p) => { if (this.accepts(p)) this.emit('sample', p.sample); };
    this.onAlert = (p) => this.emit('alert', p);
    this.onExit = (info) => {
      if (info.expected || this.gone) return;
      this.gone = sidecarGone(info);
      this.emit('gone', this.gone);
    };
  }

  accepts(params) {
    return this.subscription === null || params.subscription === this.subscription;
  }

  /**
   * Subscribe; resolves with the subscription's answer ({subscription, interval_ms, alerting,
   * diagnostics}). Samples come every `intervalMs` (at least 100) unless `alertsOnly`.
   */
  async open({ intervalMs, alertsOnly = false, signal } = {}) {
    this.client.on('monitor/metrics', this.onMetrics);
    this.client.on('monitor/alert', this.onAlert);
    this.client.on('exit', this.onExit);
    const params = { alerts_only: alertsOnly };
    if (intervalMs !== undefined) params.interval_ms = Math.max(Math.round(intervalMs), 100);
    const answer = await this.client.request('monitor.subscribe', params, { signal });
    this.subscription = answer.subscription;
    return answer;
  }

  /** The latest sample and the alerts firing now (`monitor.snapshot`). */
  snapshot(options = {}) {
    return this.client.request('monitor.snapshot', {}, options);
  }

  /** The samples and alerts the sidecar kept (`monitor.history`). */
  history(params = {}, options = {}) {
    return this.client.request('monitor.history', params, options);
  }

  /**
   * The named jobs running now (system.resources), each with its parts (jobs.status): what a
   * worker's pid alone does not say. A job that ends between the two calls is left out.
   */
  async namedJobs(options = {}) {
    const res = await this.client.request('system.resources', {}, options);
    const jobs = [];
    for (const job of res.running_jobs || []) {
      try {
        const status = await this.client.request('jobs.status', { job_id: job.job_id }, options);
        jobs.push({ ...job, parts_done: status.parts_done, parts_total: status.parts_total });
      } catch (err) {
        if (err.code !== 'INVALID_PARAMS') throw err;
        jobs.push({ ...job, parts_done: 0, parts_total: 0 }); // a job in another database: no parts known
      }
    }
    return jobs;
  }

  /** Stop listening; unsubscribe when the sidecar is still there to hear it. */
  async close() {
    this.client.removeListener('monitor/metrics', this.onMetrics);
    this.client.removeListener('monitor/alert', this.onAlert);
    this.client.removeListener('exit', this.onExit);
    if (this.subscription && !this.gone && this.client.pid) {
      await this.client.request('monitor.unsubscribe', { subscription: this.subscription }, { timeoutMs: 2000 }).catch(() => {});
    }
  }
}

module.exports = { MonitorFeed, sidecarGone };
