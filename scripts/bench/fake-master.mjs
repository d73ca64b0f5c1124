/**
 * A local master that replays a recorded replication stream as fast as the replica takes it: it
 * answers the handshake, sends +FULLRESYNC and a snapshot (diskless framing, so a real Redis
 * replica ACKs as soon as it has loaded it), waits for that first ACK, streams every chunk
 * respecting backpressure, asks REPLCONF GETACK and waits for the ACK of the last byte. The
 * replica on the other end (rf listen, or redis-server) does the whole job it does in production.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { FrameScanner } from '../../dist/resp/frames.js';

const GETACK = '*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n';

export async function startFakeMaster({ rdb, stream }) {
  const replid = randomBytes(20).toString('hex');
  const sockets = new Set();
  let settle;
  let fail;
  const synced = new Promise((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });
  synced.catch(() => undefined);

  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const scanner = new FrameScanner();
    let acked = -1;
    let onAck = null;
    socket.on('data', (chunk) => {
      let frames;
      try {
        frames = scanner.push(chunk);
      } catch (err) {
        socket.destroy();
        fail(err);
        return;
      }
      for (const f of frames) {
        if (f.kind !== 'command') continue;
        const name = f.args[0]?.toString('latin1').toLowerCase();
        const sub = f.args[1]?.toString('latin1').toLowerCase();
        if (name === 'replconf' && sub === 'ack') {
          acked = Math.max(acked, Number(f.args[2]?.toString('latin1')));
          onAck?.();
        } else if (name === 'replconf') socket.write('+OK\r\n');
        else if (name === 'ping') socket.write('+PONG\r\n');
        else if (name === 'role') socket.write('*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n');
        else if (name === 'psync' || name === 'sync') {
          void sync().then(settle, (err) => {
            socket.destroy();
            fail(err);
          });
        } else if (name === 'quit') socket.end('+OK\r\n');
        else socket.write('+OK\r\n');
      }
    });
    const untilAck = (offset) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (acked >= offset) {
            onAck = null;
            resolve(performance.now());
          }
        };
        onAck = check;
        socket.once('close', () => reject(new Error('the replica closed the replication link')));
        check();
      });
    const write = async (buf) => {
      if (!socket.write(buf)) await new Promise((r) => socket.once('drain', r));
    };
    const sync = async () => {
      const mark = randomBytes(20).toString('hex');
      await write(`+FULLRESYNC ${replid} 0\r\n$EOF:${mark}\r\n`);
      await write(rdb);
      await write(mark);
      // A diskless master streams nothing until the replica's first ACK says it has loaded the snapshot.
      const started = await untilAck(0);
      for (const chunk of stream.chunks) await write(chunk);
      const sent = performance.now();
      await write(GETACK);
      const done = await untilAck(stream.bytes);
      return { started, sent, done, seconds: (done - started) / 1000 };
    };
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: server.address().port,
    /** Resolves with the timing of the first replica's sync once it has ACKed the last byte. */
    synced,
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
