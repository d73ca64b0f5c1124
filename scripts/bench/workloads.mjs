/** The loads the benchmark applies: redis-benchmark runs and generated replication streams. */
import { runOk } from './env.mjs';

export const BENCH_TESTS = ['set', 'incr', 'lpush', 'hset', 'zadd'];
export const KEYSPACE = 100_000;

/**
 * `redis-benchmark -P 16 -t set,incr,lpush,hset,zadd -r 100000 -n <n>`: each test sends `n`
 * requests. The throughput of the whole run is total requests over the summed time of the tests
 * (the harmonic mean of the per-test rates, weighted by requests).
 */
export async function redisBenchmark(port, n, options = {}) {
  const {
    pipeline = 16,
    keyspace = KEYSPACE,
    clients = 50,
    cluster = false,
    tests = BENCH_TESTS,
    valueBytes = 3,
  } = options;
  const r = await runOk('redis-benchmark', [
    ...(cluster ? ['--cluster'] : []),
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    '-c',
    String(clients),
    '-P',
    String(pipeline),
    '-t',
    tests.join(','),
    '-d',
    String(valueBytes),
    '-n',
    String(n),
    '-r',
    String(keyspace),
    '--csv',
  ]);
  const perTest = {};
  let seconds = 0;
  for (const line of r.stdout.split('\n')) {
    const m = /^"([A-Z]+)[^"]*","([\d.]+)"/.exec(line);
    if (m === null) continue;
    const rps = Number(m[2]);
    perTest[m[1]] = rps;
    seconds += n / rps;
  }
  const printed = Object.keys(perTest).length;
  if (printed !== tests.length) {
    throw new Error(
      `redis-benchmark printed ${printed} results, expected ${tests.length}:\n${r.stdout}`,
    );
  }
  return { rps: (n * printed) / seconds, perTest, requests: n * printed, wallMs: r.ms };
}

/** Deterministic pseudo-random integers (xorshift32), so every run generates the same stream. */
export function randomInts(seed = 0x9e3779b9) {
  let x = seed >>> 0 || 1;
  return (bound) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % bound;
  };
}

const bulk = (s) => `$${s.length}\r\n${s}\r\n`;
const pad = (n) => String(n).padStart(12, '0');

/** One command as RESP text (latin1), in the form redis-benchmark's write tests propagate. */
export function benchFrame(i, rand) {
  const k = pad(rand(KEYSPACE));
  switch (i % 5) {
    case 0:
      return `*3\r\n$3\r\nSET\r\n${bulk(`key:${k}`)}$3\r\nxxx\r\n`;
    case 1:
      return `*2\r\n$4\r\nINCR\r\n${bulk(`counter:${k}`)}`;
    case 2:
      return `*3\r\n$5\r\nLPUSH\r\n$6\r\nmylist\r\n$3\r\nxxx\r\n`;
    case 3:
      return `*4\r\n$4\r\nHSET\r\n$6\r\nmyhash\r\n${bulk(`element:${k}`)}$3\r\nxxx\r\n`;
    default:
      return `*4\r\n$4\r\nZADD\r\n$6\r\nmyzset\r\n$1\r\n0\r\n${bulk(`element:${k}`)}`;
  }
}

/**
 * A replication stream of `commands` redis-benchmark-like writes (SET, INCR, LPUSH, HSET, ZADD in
 * turn, random keys), preceded by SELECT 0 as a master sends it, cut into chunks of about
 * `chunkBytes` on frame boundaries. A PING every 100 000 commands stands for the master's
 * heartbeats.
 */
export function generateStream(commands, chunkBytes = 64 * 1024) {
  const rand = randomInts();
  const chunks = [];
  let parts = [];
  let size = 0;
  let bytes = 0;
  const push = (s) => {
    parts.push(s);
    size += s.length;
    if (size >= chunkBytes) {
      const buf = Buffer.from(parts.join(''), 'latin1');
      chunks.push(buf);
      bytes += buf.length;
      parts = [];
      size = 0;
    }
  };
  push('*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n');
  let frames = 1;
  for (let i = 0; i < commands; i++) {
    push(benchFrame(i, rand));
    frames++;
    if (i % 100_000 === 99_999) {
      push('*1\r\n$4\r\nPING\r\n');
      frames++;
    }
  }
  if (parts.length > 0) {
    const buf = Buffer.from(parts.join(''), 'latin1');
    chunks.push(buf);
    bytes += buf.length;
  }
  return { chunks, bytes, frames, writes: commands };
}
