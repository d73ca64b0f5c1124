import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RemoteKv } from '../../src/daemon/control-client.js';
import { isRfError } from '../../src/errors.js';
import { testScope } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/**
 * A daemon reply that is not what the client asked for is a protocol error with its RF_ code
 * (exit 3), not a TypeError (an rf bug, exit 70). A real `rf listen` cannot be made to send one:
 * a scripted socket answers every request line with `reply(id)`.
 */
const scope = testScope();

async function daemonAnswering(reply: (id: number) => string | Buffer): Promise<RemoteKv> {
  const dir = await makeTempDir('rf-control-');
  scope.defer(() => removeTempDir(dir));
  const socketPath = path.join(dir, 'rf.sock');
  const server = net.createServer((conn) => {
    let buffered = '';
    conn.on('data', (chunk) => {
      buffered += chunk.toString('utf8');
      for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
        const { id } = JSON.parse(buffered.slice(0, nl)) as { id: number };
        buffered = buffered.slice(nl + 1);
        conn.write(reply(id));
      }
    });
    conn.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  scope.defer(() => new Promise((resolve) => server.close(resolve)));
  const kv = await RemoteKv.connect(dir, socketPath);
  if (kv === null) throw new Error('the scripted daemon did not answer');
  scope.defer(() => kv.close());
  return kv;
}

const caught = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (err: unknown) => err,
  );

describe('a malformed reply from the daemon', () => {
  it('is RF_PROTOCOL when a get is answered without a value', async () => {
    const kv = await daemonAnswering((id) => `${JSON.stringify({ id, status: {} })}\n`);
    const err = await caught(kv.get('k'));
    expect(isRfError(err, 'RF_PROTOCOL')).toBe(true);
  });

  it('is RF_PROTOCOL when the reply line is not JSON', async () => {
    const kv = await daemonAnswering(() => 'not json\n');
    const err = await caught(kv.get('k'));
    expect(isRfError(err, 'RF_PROTOCOL')).toBe(true);
  });

  it('is RF_PROTOCOL when an entries page holds fewer bytes than it says', async () => {
    const kv = await daemonAnswering((id) => {
      const body = Buffer.alloc(6);
      body.writeUInt32LE(100, 0);
      return Buffer.concat([
        Buffer.from(`${JSON.stringify({ id, count: 1, more: false, body: body.length })}\n`),
        body,
      ]);
    });
    const err = await caught(
      (async () => {
        for await (const _ of kv.entries({})) {
          // reading is the test
        }
      })(),
    );
    expect(isRfError(err, 'RF_PROTOCOL')).toBe(true);
  });
});
