import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRfError, type RfCode } from '../../src/errors.js';
import { RepoClient } from '../../src/repo/client.js';
import { readKeyFile } from '../../src/repo/crypt.js';
import { parseRepoUrl } from '../../src/repo/url.js';
import { freePort } from '../helpers/redis.js';
import { S3_ENV, type S3Server, startS3 } from '../helpers/s3.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

Object.assign(process.env, S3_ENV);

let s3: S3Server;
let tmp: string;
beforeAll(async () => {
  s3 = await startS3();
  tmp = await makeTempDir('rf-repo-client-');
});
afterAll(async () => {
  await s3?.stop();
  if (tmp !== undefined) await removeTempDir(tmp);
});

function client(
  prefix: string,
  extra: { key?: Awaited<ReturnType<typeof readKeyFile>>; bucket?: string; endpoint?: string } = {},
) {
  return new RepoClient({
    location: parseRepoUrl(`s3://${extra.bucket ?? s3.bucket}/${prefix}`),
    endpoint: extra.endpoint ?? s3.endpoint,
    pathStyle: true,
    requestTimeoutMs: 3_000,
    ...(extra.key === undefined ? {} : { key: extra.key }),
  });
}

async function code(p: Promise<unknown>): Promise<RfCode> {
  try {
    await p;
  } catch (err) {
    if (isRfError(err)) return err.code;
    throw err;
  }
  throw new Error('no error');
}

async function keyFile(name: string): Promise<string> {
  const file = path.join(tmp, name);
  await fs.writeFile(file, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  return file;
}

describe('the bucket as rf writes it', () => {
  it('puts an object once: the same content again is a no-op, other content is refused', async () => {
    const c = client('once');
    const body = Buffer.from('segment bytes');
    expect((await c.put('a/one', body)).kind).toBe('written');
    expect((await c.put('a/one', body)).kind).toBe('same');
    expect(await code(c.put('a/one', Buffer.from('other bytes')))).toBe('RF_REPO_CONFLICT');
    expect(await c.get('a/one')).toEqual(body);
    expect(await c.get('a/missing')).toBeUndefined();
    await c.put('a/two', Buffer.from('x'));
    const names = [];
    for await (const o of c.list('a/')) names.push(o.name);
    expect(names).toEqual(['a/one', 'a/two']);
    await c.delete(['a/two']);
    expect(await c.head('a/two')).toBeUndefined();
    c.close();
  });

  it('compresses a pack without a key, and still reads one written before as it is', async () => {
    const c = client('packed');
    // RESP as the stream carries it: command names and key prefixes repeat.
    const content = Buffer.from(
      Array.from(
        { length: 5000 },
        (_, i) => `*3\r\n$3\r\nSET\r\n$9\r\nkey:${String(i).padStart(5, '0')}\r\n$3\r\nxxx\r\n`,
      ).join(''),
    );
    await c.put('p/one', content);
    const stored = (await c.getStored('p/one'))!;
    expect(stored.subarray(0, 4).toString()).toBe('RFZ1');
    expect(stored.length).toBeLessThan(content.length / 4);
    expect((await c.get('p/one'))?.equals(content)).toBe(true);
    // An object stored as it is (what rf wrote before packs were compressed) reads as it is.
    const { S3Client, PutObjectCommand } = await import('@aws-sdk/client-s3');
    const raw = new S3Client({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
    });
    await raw.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'packed/p/old', Body: content }));
    raw.destroy();
    expect((await c.get('p/old'))?.equals(content)).toBe(true);
    c.close();
  });

  it('streams a file up and down, sealed with a key, and refuses it without or with another key', async () => {
    const key = await readKeyFile(await keyFile('k1'));
    const c = client('sealed', { key });
    const file = path.join(tmp, 'base.rdb');
    const content = Buffer.concat([
      Buffer.from('REDIS0010 canary-value '),
      randomBytes(3 * 1024 * 1024),
    ]);
    await fs.writeFile(file, content);
    const { createHash } = await import('node:crypto');
    const sha = createHash('sha256').update(content).digest('hex');
    const put = await c.putFile('bases/b1', file, sha);
    expect(put.kind).toBe('written');
    expect((await c.putFile('bases/b1', file, sha)).kind).toBe('same');
    const stored = await c.getStored('bases/b1');
    expect(stored?.includes(Buffer.from('canary-value'))).toBe(false);
    expect(createHash('sha256').update(stored!).digest('hex')).toBe(put.storedSha256);
    const out = path.join(tmp, 'base.out');
    await c.download('bases/b1', path.join(tmp, 'base.tmp'), out);
    expect((await fs.readFile(out)).equals(content)).toBe(true);

    await c.put('m/manifest', Buffer.from('{"canary-value":1}'));
    expect((await c.getStored('m/manifest'))?.includes(Buffer.from('canary'))).toBe(false);
    expect(await code(client('sealed').get('m/manifest', true))).toBe('RF_REPO_KEY');
    const other = await readKeyFile(await keyFile('k2'));
    expect(await code(client('sealed', { key: other }).get('m/manifest', true))).toBe(
      'RF_REPO_KEY',
    );
    // An object that does not authenticate once the key is known good is damage, not a key problem.
    expect(await code(client('sealed', { key: other }).get('m/manifest'))).toBe('RF_CHECKSUM');
    c.close();
  });

  it('names what to check: a bucket that does not exist, wrong credentials, an endpoint that does not answer', async () => {
    expect(await code(client('x', { bucket: 'no-such-bucket' }).probe())).toBe('RF_REPO_BUCKET');
    const port = await freePort();
    expect(await code(client('x', { endpoint: `http://127.0.0.1:${port}` }).probe())).toBe(
      'RF_REPO_UNREACHABLE',
    );
    // A server that accepts connections and never answers.
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const silentPort = (silent.address() as net.AddressInfo).port;
    expect(await code(client('x', { endpoint: `http://127.0.0.1:${silentPort}` }).probe())).toBe(
      'RF_REPO_UNREACHABLE',
    );
    silent.close();
    process.env.AWS_ACCESS_KEY_ID = 'NOT-S3RVER';
    try {
      expect(await code(client('x').put('y', Buffer.from('z')))).toBe('RF_REPO_AUTH');
    } finally {
      process.env.AWS_ACCESS_KEY_ID = S3_ENV.AWS_ACCESS_KEY_ID;
    }
  });

  it('refuses a key file that holds no key', async () => {
    const file = path.join(tmp, 'short');
    await fs.writeFile(file, 'abc');
    expect(await code(readKeyFile(file))).toBe('RF_REPO_KEY');
    expect(await code(readKeyFile(path.join(tmp, 'none')))).toBe('RF_REPO_KEY');
  });
});
