'use strict';
/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core (never a
 * downloaded browser) loads `monitor --web`'s page while a real query runs on a pack whose
 * duckdb_memory warning is lowered; the job-memory chart gains points and a peak, the alert
 * appears firing and then resolved, no request leaves the server, and when the sidecar dies the
 * page says so. The screenshot taken while the alert fires goes to the test's temp dir (it must be a
 * PNG); BMAD_DATA_UPDATE_SCREENSHOT=1 writes it to docs/images/monitor-dashboard.png instead, so a
 * test run leaves the checkout as it was.
 *
 * Chromium missing is a failure that says what to run, never a skip.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { startDashboard } = require('../lib/web/dashboard');
const { REPO } = require('./helpers');
const { HEAVY, startLowWarningClient } = require('./monitor-fixtures');

const CHROMIUM = process.env.BMAD_DATA_CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT = process.env.BMAD_DATA_UPDATE_SCREENSHOT === '1'
  ? path.join(REPO, 'docs', 'images', 'monitor-dashboard.png')
  : path.join(fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'bmad-data-shot-')), 'monitor-dashboard.png');
const ALERT = '#alerts tr[data-rule="duckdb_memory_warning"]';

test('the dashboard in Chromium: a real job moves the chart, its alert fires and resolves, a dead sidecar is shown', { timeout: 180000 }, async (t) => {
  if (!SCREENSHOT.startsWith(REPO)) t.after(() => fs.rmSync(path.dirname(SCREENSHOT), { recursive: true, force: true }));
  assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: run \`bash scripts/bootstrap.sh bench ray browser\` `
    + '(it runs `apt-get install -y chromium`), or set BMAD_DATA_CHROMIUM to a Chromium binary');
  const client = await startLowWarningClient();
  const dashboard = await startDashboard({ client, intervalMs: 250 });
  // --no-sandbox: Chromium's sandbox refuses to run as root, as CI containers do.
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1060 } });
    const origin = `http://127.0.0.1:${dashboard.port}/`;
    const outside = [];
    const problems = [];
    page.on('request', (req) => { if (!req.url().startsWith(origin)) outside.push(req.url()); });
    page.on('pageerror', (err) => problems.push(err.message));
    page.on('console', (msg) => { if (msg.type() === 'error') problems.push(msg.text()); });
    await page.goto(dashboard.url);
    await page.waitForSelector('#status.live');
    await page.waitForFunction(() => Number(document.getElementById('chart-memory').dataset.points) >= 2);
    assert.equal(await page.locator('#chart-memory canvas').count(), 1);
    const before = Number(await page.getAttribute('#chart-memory', 'data-points'));

    const answer = client.request('query.run', { sql: HEAVY });
    await page.waitForSelector(`${ALERT}[data-state="firing"]`, { timeout: 60000 });
    const firing = await page.locator(ALERT).innerText();
    assert.match(firing, /warning\s+firing\s+duckdb_memory_warning\s+DuckDB memory usage at [\d.]+% of limit/);
    await page.waitForTimeout(600); // a few more points of the running job on the charts
    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.deepEqual([...fs.readFileSync(SCREENSHOT).subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
    assert.deepEqual((await answer).rows, [[2000000]]);
    await page.waitForSelector(`${ALERT}[data-state="resolved"]`, { timeout: 60000 });

    const points = Number(await page.getAttribute('#chart-memory', 'data-points'));
    assert.ok(points > before, `the chart did not move: ${before} -> ${points} points`);
    assert.ok(Number(await page.getAttribute('#chart-memory', 'data-peak')) > 0, 'the job\'s RSS never showed on the chart');
    assert.equal(await page.locator(ALERT).count(), 1, 'one row per alert: the resolve updates it');

    // the time window: each click redraws every chart; the figure is printed, not asserted
    const took = [];
    for (const seconds of ['60', '300', '900', '0', '60', '300', '900', '0', '60', '300']) {
      await page.evaluate(() => { delete document.body.dataset.lastInteractionMs; });
      await page.click(`#window button[data-window="${seconds}"]`);
      await page.waitForFunction(() => document.body.dataset.lastInteractionMs !== undefined);
      took.push(Number(await page.getAttribute('body', 'data-last-interaction-ms')));
    }
    assert.equal(await page.getAttribute('#window button[data-window="300"]', 'class'), 'active');
    took.sort((a, b) => a - b);
    t.diagnostic(`time window click to the next frame over ${took.length} clicks: median ${took[took.length >> 1]} ms, max ${took.at(-1)} ms (load average ${require('node:os').loadavg()[0].toFixed(1)})`);

    // hovering a chart shows each line's value in the legend
    const legendRss = page.locator('#chart-memory .u-legend .u-series').nth(1).locator('.u-value');
    const box = await page.locator('#chart-memory .u-over').boundingBox();
    await page.mouse.move(box.x + box.width - 5, box.y + box.height / 2);
    assert.match(await legendRss.innerText(), /^[\d.]+ [KMG]?B$/);

    // a page that loses the server says so
    const second = await startDashboard({ client, intervalMs: 250 });
    const other = await browser.newPage();
    await other.goto(second.url);
    await other.waitForSelector('#status.live');
    await second.close();
    await other.waitForSelector('#status.lost', { timeout: 20000 });
    assert.match(await other.locator('#banner').innerText(), /Lost the connection to `bmad-data monitor --web`/);
    await other.close();

    process.kill(client.pid, 'SIGKILL');
    await page.waitForSelector('#banner:not([hidden])', { timeout: 20000 });
    assert.match(await page.locator('#banner').innerText(), /The sidecar is gone: the sidecar was killed by SIGKILL/);
    assert.equal(await page.locator('#status').innerText(), 'sidecar gone');
    assert.deepEqual(outside, [], 'the page asked for something outside this server');
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    await dashboard.close();
    await client.close();
  }
});
