import { readdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/redis.js';
import { rf } from '../helpers/rf.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * Every command's bad input, one row each: the command line, the RF_ code and exit it must end
 * in, and nothing written. `{store}`, `{out}` and `{dir}` are paths inside a fresh directory
 * that must still be empty afterwards; `{nobody}` is a port nothing listens on, so a row that
 * got past its checks would fail to connect (RF_CONNECT) instead of passing; `{busy}` is a port
 * the test holds open.
 */
interface Row {
  args: string;
  code: string;
  exit: number;
  /** Words the message must hold: the flag, the value. */
  says?: string[];
}

const rows: Row[] = [
  // Commander's own refusals, as RF_USAGE naming what it did not know.
  { args: 'frobnicate', code: 'RF_USAGE', exit: 2, says: ["unknown command 'frobnicate'"] },
  { args: 'info --store {store} --frob', code: 'RF_USAGE', exit: 2, says: ['--frob'] },
  {
    args: 'restore --store {store} --untill latest --out {out}',
    code: 'RF_USAGE',
    exit: 2,
    says: ["unknown option '--untill'", 'Did you mean --until?'],
  },
  { args: 'restore --store {store} --out {out}', code: 'RF_USAGE', exit: 2, says: ['--until'] },
  { args: 'log --store {store} --since', code: 'RF_USAGE', exit: 2, says: ['--since'] },
  // --name never becomes a path outside the store, for any command that takes it.
  ...[
    'listen --source redis://127.0.0.1:{nobody}',
    'info',
    'verify',
    'log',
    'restore --until latest --out {out}',
  ].flatMap((cmd) =>
    ['../../escape', 'a/b', '.hidden', ''].map((name) => ({
      args: `${cmd.split(' ')[0]} --store {store} ${cmd.split(' ').slice(1).join(' ')} --name '${name}'`,
      code: 'RF_USAGE',
      exit: 2,
      says: ['--name', 'not a valid source name'],
    })),
  ),
  {
    args: 'ship --aof-dir {dir} --to http://127.0.0.1:{nobody} --token t --name ../etc',
    code: 'RF_USAGE',
    exit: 2,
    says: ['--name'],
  },
  // Every number, size and duration goes through one parser that names the flag.
  ...[
    '--segment-size lots',
    '--segment-size 0',
    '--flush-interval 0',
    '--flush-interval 1x',
    '--repl-timeout soon',
    '--connect-timeout -5',
    '--base-every never',
    '--retain 7',
    '--chunk-size 0',
    '--chunk-pause soon',
    '--rewrite-timeout 30',
    '--rewrite-at 25:00',
    '--log-level loud',
  ].map((flag) => ({
    args: `listen --store {store} --source redis://127.0.0.1:{nobody} --aof-dir {dir} ${flag}`,
    code: 'RF_USAGE',
    exit: 2,
    says: [flag.split(' ')[0]!],
  })),
  // Each roll rebuilds the dataset on the backup host: more often than 5m is refused.
  ...['1m', '299s', 'hourly'].map((every) => ({
    args: `listen --store {store} --source redis://127.0.0.1:{nobody} --roll-base-every ${every}`,
    code: 'RF_USAGE',
    exit: 2,
    says: every === 'hourly' ? ['--roll-base-every'] : ['--roll-base-every', 'at least 300000 ms'],
  })),
  {
    args: 'listen --store {store} --source redis://127.0.0.1:{nobody} --metrics nowhere',
    code: 'RF_USAGE',
    exit: 2,
    says: ['--metrics'],
  },
  {
    args: 'listen --store {store} --source redis://127.0.0.1:{nobody} --ingest 127.0.0.1:{nobody}',
    code: 'RF_USAGE',
    exit: 2,
    says: ['--ingest', 'token'],
  },
  { args: 'listen --store {store} --source http://x', code: 'RF_BAD_URL', exit: 2 },
  // A first rf listen that cannot reach its master leaves no store behind.
  {
    args: 'listen --store {store} --source redis://127.0.0.1:{nobody}',
    code: 'RF_CONNECT',
    exit: 3,
    says: ['127.0.0.1:{nobody}'],
  },
  {
    args: 'restore --store {store} --until latest --out {out} --target-timeout soon',
    code: 'RF_USAGE',
    exit: 2,
    says: ['--target-timeout'],
  },
  {
    args: 'restore --store {store} --until latest --out {out} --from disk',
    code: 'RF_USAGE',
    exit: 2,
    says: ['--from'],
  },
  {
    args: 'restore --store {store} --until latest --out {out} --target redis://127.0.0.1:{nobody}',
    code: 'RF_USAGE',
    exit: 2,
    says: ['--out', '--target'],
  },
  { args: 'restore --store {store} --until latest', code: 'RF_USAGE', exit: 2, says: ['--out'] },
  {
    args: 'restore --store {store} --until yesterday --out {out}',
    code: 'RF_BAD_TIME',
    exit: 2,
    says: ['yesterday'],
  },
  { args: "log --store {store} --key ''", code: 'RF_USAGE', exit: 2, says: ['--key'] },
  { args: 'log --store {store} --db x', code: 'RF_USAGE', exit: 2, says: ['--db'] },
  { args: 'ship --aof-dir {dir}', code: 'RF_USAGE', exit: 2, says: ['--to'] },
  { args: 'ship --to http://127.0.0.1:{nobody}', code: 'RF_USAGE', exit: 2, says: ['--aof-dir'] },
  {
    args: 'ship --aof-dir {dir} --to ftp://127.0.0.1:{nobody} --token t',
    code: 'RF_USAGE',
    exit: 2,
    says: ['--to'],
  },
  ...['--chunk-size lots', '--chunk-pause soon', '--rewrite-timeout 1', '--rewrite-at noon'].map(
    (flag) => ({
      args: `ship --aof-dir {dir} --to http://127.0.0.1:{nobody} --token t ${flag}`,
      code: 'RF_USAGE',
      exit: 2,
      says: [flag.split(' ')[0]!],
    }),
  ),
  { args: 'doctor --source bogus://x', code: 'RF_BAD_URL', exit: 2 },
  {
    args: 'doctor --source redis://127.0.0.1:{nobody} --reconnect-window soon',
    code: 'RF_USAGE',
    exit: 2,
    says: ['--reconnect-window'],
  },
  // rf ui: a page beyond loopback needs a token; a port in use is named with what to do.
  ...['0.0.0.0:{nobody}', '10.1.2.3:{nobody}', '[::]:{nobody}'].map((listen) => ({
    args: `ui --store {store} --listen ${listen}`,
    code: 'RF_USAGE',
    exit: 2,
    says: [`--listen ${listen}`, 'token'],
  })),
  {
    args: 'ui --store {store} --listen 127.0.0.1:{busy}',
    code: 'RF_USAGE',
    exit: 2,
    says: ['127.0.0.1:{busy}', 'the port is in use', '--listen'],
  },
  { args: 'ui --store {store} --listen nowhere', code: 'RF_USAGE', exit: 2, says: ['--listen'] },
  {
    args: 'ui --store {store} --listen 127.0.0.1:{nobody} --token-file {dir}/missing',
    code: 'RF_USAGE',
    exit: 2,
    says: ['--token-file'],
  },
  { args: 'ui --store {store} --listen 127.0.0.1:{nobody}', code: 'RF_STORE_MISSING', exit: 3 },
  { args: 'info --store {store}', code: 'RF_STORE_MISSING', exit: 3 },
  { args: 'verify --store {store}', code: 'RF_STORE_MISSING', exit: 3 },
  { args: 'log --store {store}', code: 'RF_STORE_MISSING', exit: 3 },
  {
    args: 'restore --store {store} --until latest --out {out}',
    code: 'RF_STORE_MISSING',
    exit: 3,
  },
];

/** Splits a row's command line like a shell would, for the quoting these rows use. */
function argv(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

let nobody: number;
/** A port this test holds open, so a command asked to listen there finds it in use. */
let busy: net.Server;
beforeAll(async () => {
  nobody = await freePort();
  busy = net.createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
});
afterAll(async () => {
  await new Promise((resolve) => busy.close(resolve));
});

describe('every command refuses bad input with its RF_ code and exit, writing nothing', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await removeTempDir(d);
  });

  it.each(rows)('rf $args → $code, exit $exit', async (row) => {
    const work = await makeTempDir('rf-bad-input-');
    dirs.push(work);
    const dir = await makeTempDir('rf-bad-input-aof-');
    dirs.push(dir);
    const fill = (s: string) =>
      s
        .replaceAll('{store}', path.join(work, 'store'))
        .replaceAll('{out}', path.join(work, 'out'))
        .replaceAll('{dir}', dir)
        .replaceAll('{nobody}', String(nobody))
        .replaceAll('{busy}', String((busy.address() as net.AddressInfo).port));
    const [command = '', ...rest] = argv(fill(row.args));
    const res = await rf([command, '--json', ...rest], { timeoutMs: 20_000 });
    expect({ exit: res.code, stderr: res.stderr }).toMatchObject({ exit: row.exit });
    // rf listen logs to stdout too: the error is the last document.
    const reported = JSON.parse(res.stdout.slice(res.stdout.lastIndexOf('{\n  "ok"'))) as {
      ok: boolean;
      error: { code: string };
    };
    expect(reported).toMatchObject({ ok: false, error: { code: row.code } });
    expect(res.stderr).toContain(`rf: ${row.code}: `);
    for (const word of row.says ?? []) expect(res.stderr).toContain(fill(word));
    expect(await readdir(work)).toEqual([]);
    expect(await readdir(dir)).toEqual([]);
  });
});
