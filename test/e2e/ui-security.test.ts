import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { freePort } from '../helpers/redis.js';
import { RF_BIN } from '../helpers/rf.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * What `rf ui` lets through, over plain HTTP from the real CLI: the token where one is set
 * (compared whole; never printed), the Host a page must be reached by when none is, and that
 * nothing but GET is answered.
 */

const TOKEN = 'ui-secret-4f1c2b9e';
let work: string;
let store: string;
const started: ChildProcess[] = [];

async function startUi(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ port: number; output: () => string }> {
  const port = await freePort();
  const listen = args.includes('--listen') ? [] : ['--listen', `127.0.0.1:${port}`];
  const child = spawn(
    process.execPath,
    [
      RF_BIN,
      'ui',
      '--store',
      store,
      ...listen,
      ...args.map((a) => a.replace('{port}', String(port))),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
  );
  started.push(child);
  let output = '';
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`rf ui did not start\n${output}`)), 20_000);
    child.stdout?.on('data', (d: Buffer) => {
      output += d.toString();
      if (output.includes('serving')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('close', (code) => reject(new Error(`rf ui exited ${code}\n${output}`)));
  });
  return { port, output: () => output };
}

function request(
  port: number,
  pathname: string,
  options: { method?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: pathname,
        method: options.method ?? 'GET',
        headers: options.headers,
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  work = await makeTempDir('rf-ui-security-');
  store = path.join(work, 'store');
  await (await Store.open(store, { create: true })).close();
  await writeFile(path.join(work, 'token'), `${TOKEN}\n`, { mode: 0o600 });
});

afterAll(async () => {
  for (const c of started) c.kill('SIGKILL');
  await removeTempDir(work);
});

describe('rf ui with a token', () => {
  it('serves the page to anyone, the data only with the whole token, and never prints it', async () => {
    const ui = await startUi(['--token-file', path.join(work, 'token')]);
    const page = await request(ui.port, '/');
    expect(page.status).toBe(200);
    expect(page.body).toContain('<script src="/app.js"');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    for (const auth of [undefined, 'Bearer wrong', `Bearer ${TOKEN.slice(0, -1)}`, TOKEN]) {
      const res = await request(ui.port, '/api/info', {
        headers: auth === undefined ? {} : { authorization: auth },
      });
      expect(res.status, String(auth)).toBe(401);
      expect(res.body).not.toContain('"sources"');
    }
    const ok = await request(ui.port, '/api/info', {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ store, sources: [] });
    expect(ui.output()).not.toContain(TOKEN);
    expect(ui.output()).toContain('#token=<token>');
  });

  it('serves beyond loopback with RF_UI_TOKEN', async () => {
    const ui = await startUi(['--listen', '0.0.0.0:{port}'], { RF_UI_TOKEN: TOKEN });
    const res = await request(ui.port, '/api/info', {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(res.status).toBe(200);
    expect((await request(ui.port, '/api/info')).status).toBe(401);
    expect(ui.output()).not.toContain(TOKEN);
  });
});

describe('rf ui on loopback without a token', () => {
  it('answers only to a Host naming this host and its port (no DNS rebinding)', async () => {
    const ui = await startUi([]);
    for (const host of [`127.0.0.1:${ui.port}`, `localhost:${ui.port}`]) {
      expect((await request(ui.port, '/api/info', { headers: { host } })).status, host).toBe(200);
    }
    for (const host of [`evil.example:${ui.port}`, `127.0.0.1:${ui.port + 1}`, 'localhost']) {
      const res = await request(ui.port, '/api/info', { headers: { host } });
      expect(res.status, host).toBe(421);
      expect(res.body).not.toContain('"sources"');
    }
  });

  it('is read-only: every method but GET and HEAD is refused', async () => {
    const ui = await startUi([]);
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const res = await request(ui.port, '/api/plan?name=default&until=latest', { method });
      expect(res.status, method).toBe(405);
      expect(res.headers.allow).toBe('GET, HEAD');
    }
  });

  it('refuses a source name that is not one, as the command line does, and bad parameters', async () => {
    const ui = await startUi([]);
    const res = await request(
      ui.port,
      `/api/plan?name=${encodeURIComponent('../../etc')}&until=latest`,
    );
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ ok: false, error: { code: 'RF_USAGE' } });
    for (const query of [
      'name=default&from=0&until=1000&bins=-5',
      'name=default&from=0&until=1000&bins=1e9',
      'name=default&from=0&until=1000&bins=2.5',
      'name=default&from=1000&until=0',
      'name=default&from=x&until=1000',
      'name=default&until=1000',
    ]) {
      const bad = await request(ui.port, `/api/activity?${query}`);
      expect(bad.status, query).toBe(400);
      expect(JSON.parse(bad.body), query).toMatchObject({ ok: false, error: { code: 'RF_USAGE' } });
    }
    expect((await request(ui.port, '/api/nothing')).status).toBe(404);
    expect((await request(ui.port, '/api/__proto__')).status).toBe(404);
  });
});
