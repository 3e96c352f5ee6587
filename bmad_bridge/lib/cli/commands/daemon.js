'use strict';
/**
 * `bmad-data daemon start|stop|status`: the shared daemon serving this directory's commands.
 *
 * start: make sure one runs (start it when none does) and show its status. stop: ask it to stop
 * (running requests of every client are cancelled) and wait until its socket is gone. status:
 * pid, version, socket, clients, running jobs, uptime and the machine budget it shares; when none
 * runs, says so (`running: false`) with exit code 0.
 */
const { runCommand } = require('../session');
const { BmadDataError } = require('../../errors');
const { SidecarClient } = require('../../client');
const daemons = require('../../daemon');
const { renderTable, formatBytes, formatMs } = require('../format');

const ACTIONS = ['start', 'stop', 'status'];

function register(program) {
  program
    .command('daemon')
    .description('Start, stop or show the shared daemon that serves bmad-data commands in this directory')
    .argument('<action>', ACTIONS.join(' | '))
    .action(async (action, opts, cmd) => {
      const globals = cmd.optsWithGlobals();
      await runCommand('daemon', globals, (ctx) => handle(action, ctx), {
        gate: false,
        start: false,
        validate: () => {
          if (!ACTIONS.includes(action)) {
            throw new BmadDataError('USAGE', `unknown daemon action '${action}'`, { hint: `Run \`bmad-data daemon ${ACTIONS.join('|')}\`.` });
          }
        },
      });
    });
}

/** A client on the running daemon, or null when none runs (never starts one). */
async function attach(client) {
  const paths = daemons.daemonPaths({ root: client.root, env: client.env, cwd: client.cwd });
  try {
    await daemons.connectSocket(paths.socket).then((s) => s.destroy());
  } catch {
    return { paths, daemon: null };
  }
  const daemon = new SidecarClient({ cwd: client.cwd, initialize: { client: { name: 'bmad-data daemon' } }, restart: { maxRestarts: 0 }, daemon: true });
  await daemon.start();
  return { paths, daemon };
}

async function handle(action, { client, reporter }) {
  if (daemons.daemonDisabled(client.env) && action === 'start') {
    throw new BmadDataError('USAGE', `the daemon is turned off here (${daemons.daemonDisabled(client.env)})`, { hint: 'Unset BMAD_DATA_NO_DAEMON to use it.' });
  }
  if (action === 'start') {
    const daemon = new SidecarClient({ cwd: client.cwd, initialize: { client: { name: 'bmad-data daemon' } }, restart: { maxRestarts: 0 }, daemon: true });
    try {
      await daemon.start();
      if (daemon.via !== 'daemon') throw new BmadDataError('SIDECAR_UNAVAILABLE', 'the daemon could not be started', { hint: 'Run with --verbose to see why; `bmad-data doctor` checks the sidecar.' });
      return report(reporter, await daemon.request('daemon.status'));
    } finally {
      await daemon.close().catch(() => {});
    }
  }
  const { paths, daemon } = await attach(client);
  if (!daemon) {
    reporter.result('daemon', { running: false, socket: paths.socket }, (d, r) => r.print(`No daemon runs for this directory (socket ${d.socket}).`));
    return undefined;
  }
  try {
    if (action === 'status') return report(reporter, await daemon.request('daemon.status'));
    const stopped = await daemon.request('daemon.stop', {});
    await daemon.close().catch(() => {});
    const gone = await daemons.waitGone(paths.socket, { pid: stopped.pid, timeoutMs: 30000 });
    reporter.result('daemon', { running: !gone, stopped: gone, pid: stopped.pid, socket: paths.socket }, (d, r) => r.print(d.stopped ? `Stopped the daemon (pid ${d.pid}).` : `The daemon (pid ${d.pid}) is still stopping.`));
    return undefined;
  } finally {
    await daemon.close().catch(() => {});
  }
}

function report(reporter, status) {
  reporter.result('daemon', { running: true, ...status }, (d, r) => {
    const c = r.out;
    r.print(c.green(`🦆 bmad-data daemon ${d.version}: pid ${d.pid}, up ${formatMs(d.uptime_ms)}`));
    r.print(`Socket: ${c.cyan(d.socket)}  idle timeout ${d.idle_timeout_s} s`);
    const b = d.budget;
    r.print(`Budget: ${formatBytes(b.reserved_bytes)} of ${formatBytes(b.machine_budget_bytes)} held by ${b.running_jobs} job(s), ${b.waiting_jobs} waiting`);
    r.print(`Named jobs running: ${d.jobs.length ? d.jobs.join(', ') : 'none'}`);
    r.print(renderTable(['client', 'name', 'connected', 'running', 'config dir'], d.clients.map((x) => [String(x.number), x.name || '', formatMs(x.connected_ms), String(x.running), x.config_dir]), { paint: c.bold, maxCell: 60 }));
  });
}

module.exports = { register };
