#!/usr/bin/env node
/**
 * The floor any consumer of a master's replication stream can reach: a replica that reads the
 * stream into nothing. It takes the snapshot (diskless `$EOF:` framing or `$<length>`) and drops
 * it, then counts the stream's bytes and acknowledges the offset once a second (REPLCONF ACK, as
 * a replica does), and prints each offset it acknowledges on stdout. Nothing is parsed or kept.
 *
 *   node scripts/bench/null-replica.mjs <master port> [host]
 */
import net from 'node:net';

const port = Number(process.argv[2]);
const host = process.argv[3] ?? '127.0.0.1';
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: null-replica.mjs <master port> [host]');
  process.exit(2);
}

const command = (...args) =>
  `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;

const socket = net.connect({ port, host });
socket.setNoDelay(true);
socket.on('error', (err) => {
  console.error(`null replica: ${err.message}`);
  process.exit(1);
});
socket.on('close', () => process.exit(0));
process.on('SIGTERM', () => socket.destroy());

/** 'replies' (the three +OK/+FULLRESYNC lines), 'preamble', 'rdb', then 'stream'. */
let phase = 'replies';
let replies = 0;
let pending = Buffer.alloc(0);
let offset = 0;
/** Diskless transfer: the 40-byte mark that ends the RDB, and the last bytes seen. */
let mark = null;
let tail = Buffer.alloc(0);
/** Disk transfer: bytes of the RDB still to come. */
let left = 0;

// One at a time: a master refuses PSYNC while replies to the client are still pending.
const handshake = [
  command('REPLCONF', 'listening-port', '0'),
  command('REPLCONF', 'capa', 'eof', 'capa', 'psync2'),
  command('PSYNC', '?', '-1'),
];
socket.write(handshake[0]);

function line() {
  const eol = pending.indexOf('\r\n');
  if (eol < 0) return null;
  const text = pending.toString('latin1', 0, eol);
  pending = pending.subarray(eol + 2);
  return text;
}

function startStream(rest) {
  phase = 'stream';
  offset += rest.length;
  ack();
  setInterval(ack, 1000).unref();
}

function ack() {
  socket.write(command('REPLCONF', 'ACK', String(offset)));
  process.stdout.write(`${offset}\n`);
}

socket.on('data', (chunk) => {
  if (phase === 'stream') {
    offset += chunk.length;
    return;
  }
  pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
  while (phase === 'replies') {
    // The master sends newlines to keep the link alive while it prepares the snapshot.
    while (pending[0] === 0x0a) pending = pending.subarray(1);
    const text = line();
    if (text === null) return;
    if (text.startsWith('-')) throw new Error(`the master refused: ${text}`);
    replies++;
    if (replies < handshake.length) socket.write(handshake[replies]);
    const full = /^\+FULLRESYNC \S+ (\d+)$/.exec(text);
    if (full !== null) offset = Number(full[1]);
    if (replies === 3) phase = 'preamble';
  }
  if (phase === 'preamble') {
    while (pending[0] === 0x0a) pending = pending.subarray(1);
    const text = line();
    if (text === null) return;
    if (text.startsWith('$EOF:')) mark = Buffer.from(text.slice(5), 'latin1');
    else left = Number(text.slice(1));
    phase = 'rdb';
  }
  if (phase === 'rdb') {
    const data = pending;
    pending = Buffer.alloc(0);
    if (mark === null) {
      if (data.length < left) {
        left -= data.length;
        return;
      }
      startStream(data.subarray(left));
      return;
    }
    // Only the last bytes are kept: the mark may arrive split across two reads.
    const seen = Buffer.concat([tail, data]);
    const at = seen.indexOf(mark);
    if (at < 0) {
      tail = seen.subarray(Math.max(0, seen.length - mark.length));
      return;
    }
    startStream(seen.subarray(at + mark.length));
  }
});
