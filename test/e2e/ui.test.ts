import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisClient } from '../../src/resp/client.js';
import { waitFor } from '../helpers/load.js';
import { freePort, type RedisServer, startRedis } from '../helpers/redis.js';
import { RF_BIN, RfDaemon, rf } from '../helpers/rf.js';
import { caughtUp } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * `rf ui` in a real browser: Debian's chromium, headless, driven by playwright-core, against a
 * store a real redis-server and rf listen built here (two timelines with the gap between them,
 * a fresh base, a key written, deleted and written again). The page is read while rf listen
 * runs (through its control socket) and after it stopped (the store opened directly); what it
 * draws, plans and lists is compared with what `rf info`, `rf restore --dry-run` and `rf log`
 * print with --json.
 */

const CHROMIUM = process.env.RF_TEST_CHROMIUM ?? '/usr/bin/chromium';
const run = promisify(execFile);
/** Where the screenshot is kept after the run (gitignored). */
const ARTIFACTS =
  process.env.RF_TEST_ARTIFACTS ??
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../test-artifacts');

let master: RedisServer;
let client: RedisClient;
let work: string;
let store: string;
let daemon: RfDaemon;
let ui: { child: ChildProcess; url: string; stdout: string };
let context: BrowserContext;
let page: Page;

async function startUi(): Promise<typeof ui> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [RF_BIN, 'ui', '--store', store, '--listen', `127.0.0.1:${port}`, '--json'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`rf ui did not start\n${stdout}\n${stderr}`)),
      20_000,
    );
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /"url": "([^"]+)"/.exec(stdout);
      if (m !== null) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.on('close', (code) => reject(new Error(`rf ui exited ${code}\n${stdout}\n${stderr}`)));
  });
  return { child, url, stdout };
}

async function cli(args: string[]): Promise<string> {
  const res = await rf(args);
  expect(res.code, res.stderr).toBe(0);
  return res.stdout;
}

interface InfoSource {
  name: string;
  timelines: { id: number; from: string; until: string; reason: string }[];
  gaps: { from: string; until: string; reason: string }[];
  restorable: { from: string; until: string }[];
  bases: { timeline: number; offset: number; takenAt: string }[];
}

async function infoJson(): Promise<InfoSource> {
  return (JSON.parse(await cli(['info', '--store', store, '--json'])) as { sources: InfoSource[] })
    .sources[0]!;
}

/** What the page drew, read back from the data-* attributes of the drawn elements. */
async function drawn(p: Page) {
  const all = (kind: string) =>
    p.$$eval(`[data-kind="${kind}"]`, (els) =>
      els.map((e) =>
        Object.fromEntries(
          e
            .getAttributeNames()
            .filter((n: string) => n.startsWith('data-'))
            .map((n: string) => [
              n.slice(5).replace(/-([a-z])/g, (_m: string, c: string) => c.toUpperCase()),
              e.getAttribute(n),
            ]),
        ),
      ),
    );
  return {
    timelines: await all('timeline'),
    gaps: await all('gap'),
    restorable: await all('restorable'),
    bases: await all('base'),
    forks: await all('fork'),
  };
}

/** Waits until the element's text is `text` (or matches it), on a generous timeout. */
async function textIs(p: Page, selector: string, text: string | RegExp): Promise<void> {
  let seen: string | null = null;
  await waitFor(
    async () => {
      seen = await p.locator(selector).textContent();
      return typeof text === 'string' ? seen === text : seen !== null && text.test(seen);
    },
    `${selector} to read ${String(text)} (it reads ${seen})`,
  );
}

async function ready(p: Page): Promise<void> {
  await p.waitForSelector('body[data-ready="true"]', { timeout: 20_000 });
  await p.waitForSelector('#chart[data-activity-loaded]', { timeout: 20_000 });
}

function withoutSeconds(plan: Record<string, unknown>) {
  const { seconds: _seconds, ...rest } = plan;
  return rest;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install chromium (or set RF_TEST_CHROMIUM)`);
  }
  master = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
  client = await master.client();
  work = await makeTempDir('rf-ui-');
  store = path.join(work, 'store');
  daemon = RfDaemon.start([
    '--source',
    master.url,
    '--store',
    store,
    '--flush-interval',
    '20',
    '--base-every',
    '1s',
  ]);
  await daemon.waitForLog((l) => l.msg === 'first timeline started from the base');
  for (let i = 0; i < 120; i++) await client.call('SET', `user:${i}`, `v${i}`);
  await daemon.waitForLog((l) => l.msg === 'fresh base taken', 20_000);
  await client.call('INCR', 'hits');
  await client.call('DEL', 'user:42');
  await caughtUp(master);
  const before = daemon.lines.length;
  await master.restart();
  await daemon.waitForLog((l) => l.msg === 'new timeline after a gap', 30_000, before);
  client = await master.client();
  for (let i = 0; i < 80; i++) await client.call('HSET', `order:${i}`, 'qty', String(i));
  await client.call('SET', 'user:42', 'back');
  await caughtUp(master);
  ui = await startUi();
  context = await chromium.launchPersistentContext(path.join(work, 'chromium'), {
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 900 },
  });
  page = context.pages()[0] ?? (await context.newPage());
  await page.goto(ui.url);
  await ready(page);
}, 90_000);

afterAll(async () => {
  await context?.close();
  ui?.child.kill('SIGKILL');
  await daemon?.stop('SIGKILL');
  await master?.stop();
  if (work) await removeTempDir(work);
});

describe('rf ui in headless Chromium, while rf listen runs', () => {
  it('reads the archive through the daemon', async () => {
    await textIs(page, '#daemon', `rf listen running (pid ${daemon.child.pid})`);
    expect(await page.locator('#store').textContent()).toBe(store);
  });

  it('a click on the axis plans a restore to that moment, as rf restore --dry-run does', async () => {
    const first = page.locator('[data-kind="restorable"]').first();
    const box = (await first.boundingBox())!;
    await page.mouse.click(box.x + box.width * 0.6, box.y + box.height / 2);
    await page.waitForSelector('#plan[data-state="ready"]', { timeout: 20_000 });
    const moment = (await page.locator('#plan').getAttribute('data-until'))!;
    expect(moment).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const shown = JSON.parse((await page.locator('#plan-json').textContent())!);
    const printed = JSON.parse(
      await cli(['restore', '--store', store, '--until', moment, '--dry-run', '--json']),
    );
    expect(withoutSeconds(shown)).toEqual(withoutSeconds(printed));
    expect(shown.timeline).toBe(1);
    // The command the page shows runs as it is, and plans the same.
    const command = (await page.locator('[data-command="dry-run"]').textContent())!;
    expect(command).toBe(`rf restore --store ${store} --name default --until ${moment} --dry-run`);
    const { stdout } = await run('sh', [
      '-c',
      `"$0" "$1" ${command.slice(3)} --json`,
      process.execPath,
      RF_BIN,
    ]);
    expect(withoutSeconds(JSON.parse(stdout))).toEqual(withoutSeconds(printed));
    expect(await page.locator('[data-command="out"]').textContent()).toBe(
      `rf restore --store ${store} --name default --until ${moment} --out ./restored`,
    );
  });

  it('a click in the gap gets the refusal rf restore gives', async () => {
    const gap = (await page.locator('[data-kind="gap"]').first().boundingBox())!;
    await page.mouse.click(gap.x + gap.width / 2, gap.y + gap.height / 2);
    await page.waitForSelector('#plan[data-state="error"]', { timeout: 20_000 });
    const moment = (await page.locator('#plan').getAttribute('data-until'))!;
    const res = await rf(['restore', '--store', store, '--until', moment, '--dry-run', '--json']);
    const refused = JSON.parse(res.stdout) as { error: { code: string } };
    expect(refused.error.code).toBe('RF_TIME_IN_GAP');
    expect(await page.locator('#plan .error').getAttribute('data-code')).toBe('RF_TIME_IN_GAP');
  });

  it('the key box lists what rf log --key prints', async () => {
    await page.locator('#key').fill('user:42');
    await page.locator('#key-form button').click();
    await page.waitForSelector('#key-log[data-state="ready"]', { timeout: 20_000 });
    const rows = await page.$$eval('#key-log tr[data-time]', (trs) =>
      trs.map((tr) => [...tr.querySelectorAll('td')].slice(0, 5).map((td) => td.textContent)),
    );
    const printed = (await cli(['log', '--store', store, '--key', 'user:42', '--json']))
      .trim()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as {
            time: string;
            db: number;
            timeline: number;
            offset: number;
            command: string;
            args: string[];
          },
      );
    // SET, DEL, SET again: the write, the mistake, the repair.
    expect(printed.map((w) => w.command)).toEqual(['SET', 'DEL', 'SET']);
    expect(rows).toEqual(
      printed.map((w) => [
        w.time,
        String(w.db),
        String(w.timeline),
        String(w.offset),
        `${w.command} ${w.args.join(' ')}`,
      ]),
    );
    expect(await page.locator('[data-command="log"]').textContent()).toBe(
      `rf log --store ${store} --name default --key user:42`,
    );
  });

  it('zooms to a minute around the moment picked', async () => {
    await page.locator('#zoom-minute').click();
    await textIs(page, '#view', /\(60 s\)$/);
    // The activity is fetched again for the minute in view, in bins of a second or less.
    await waitFor(
      async () =>
        Number(await page.$eval('g[data-kind="activity"]', (g) => g.getAttribute('data-bin-ms'))) <=
        1000,
      'the activity of the minute in view',
    );
  });
});

describe('rf ui in headless Chromium, rf listen stopped', () => {
  it('draws the ranges rf info --json holds: timelines, gaps, restorable ranges, bases', async () => {
    expect((await daemon.stop()).code).toBe(0);
    const info = await infoJson();
    await page.reload();
    await ready(page);
    await textIs(page, '#daemon', 'rf listen not running');
    const d = await drawn(page);
    expect(info.timelines).toHaveLength(2);
    expect(info.gaps).toHaveLength(1);
    expect(info.bases.length).toBeGreaterThanOrEqual(3);
    expect(d.timelines).toEqual(
      info.timelines.map((t) => ({
        kind: 'timeline',
        id: String(t.id),
        from: t.from,
        until: t.until,
        reason: t.reason,
      })),
    );
    expect(d.restorable).toEqual(
      info.restorable.map((r) => ({ kind: 'restorable', from: r.from, until: r.until })),
    );
    expect(d.gaps).toEqual(
      info.gaps.map((g) => ({ kind: 'gap', from: g.from, until: g.until, reason: g.reason })),
    );
    expect(d.bases).toEqual(
      info.bases.map((b) => ({
        kind: 'base',
        takenAt: b.takenAt,
        timeline: String(b.timeline),
        offset: String(b.offset),
      })),
    );
    // The second timeline starts after a full resync: drawn as a new timeline on the axis.
    expect(d.forks).toEqual([
      { kind: 'fork', at: info.timelines[1]!.from, reason: info.timelines[1]!.reason },
    ]);

    await mkdir(ARTIFACTS, { recursive: true });
    const shot = path.join(ARTIFACTS, 'rf-ui.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`rf ui screenshot: ${shot}`);
  });

  it('stops on SIGTERM with exit 0', async () => {
    const closed = new Promise<number | null>((resolve) => ui.child.on('close', resolve));
    ui.child.kill('SIGTERM');
    expect(await closed).toBe(0);
  });
});
