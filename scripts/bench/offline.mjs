/**
 * Row 3: how many commands a second rf frames, indexes and commits with nothing else running.
 * A generated redis-benchmark-like stream is served by a local fake master to the real `rf
 * listen` process (socket, framing, segments, fsynced LevelDB batches, ACK of the last byte),
 * and, as the reference, to a real redis-server replica through the same fake master. The same
 * stream also goes through FrameScanner alone and FrameScanner + StreamWriter in this process, to
 * show where the time goes.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { FrameScanner } from '../../dist/resp/frames.js';
import { kindAt } from '../../dist/store/commands.js';
import { cpuSeconds, median, peakRss, removeDir, startRedis, tempDir } from './env.mjs';
import { startFakeMaster } from './fake-master.mjs';
import { fmtBytes, fmtCount, fmtRate, row } from './format.mjs';
import { startListen } from './rf.mjs';
import { emptyRdb, newArchive, SEGMENT_BYTES } from './store.mjs';
import { generateStream } from './workloads.mjs';

async function viaRf(rdb, stream) {
  const fake = await startFakeMaster({ rdb, stream });
  const dir = await tempDir('offline-rf');
  let listen = null;
  try {
    listen = await startListen(
      `redis://127.0.0.1:${fake.port}`,
      path.join(dir, 'store'),
      path.join(dir, 'listen.log'),
    );
    const cpu0 = cpuSeconds(listen.pid);
    const t = await fake.synced;
    const cpu = cpuSeconds(listen.pid) - cpu0;
    const durable = (await listen.status())?.durableOffset;
    if (!(durable >= stream.bytes))
      throw new Error(`rf acknowledged ${stream.bytes} but holds ${durable}`);
    return { ...t, cpu, rss: peakRss(listen.pid) };
  } finally {
    await listen?.stop();
    await fake.close();
    await removeDir(dir);
  }
}

async function viaReplica(rdb, stream) {
  const fake = await startFakeMaster({ rdb, stream });
  const replica = await startRedis({ label: 'offline-replica' });
  try {
    const cpu0 = cpuSeconds(replica.pid);
    await replica.client.call('REPLICAOF', '127.0.0.1', String(fake.port));
    const t = await fake.synced;
    const cpu = cpuSeconds(replica.pid) - cpu0;
    await replica.client.call('REPLICAOF', 'NO', 'ONE');
    return { ...t, cpu };
  } finally {
    await replica.stop();
    await fake.close();
  }
}

/** FrameScanner alone: the protocol layer's ceiling. */
function scanOnly(stream) {
  const scanner = new FrameScanner({ startAt: 1 });
  const t0 = performance.now();
  let frames = 0;
  const count = () => {
    frames++;
  };
  for (const chunk of stream.chunks) scanner.scan(chunk, count);
  const seconds = (performance.now() - t0) / 1000;
  if (frames !== stream.frames)
    throw new Error(`scanner found ${frames} frames, expected ${stream.frames}`);
  return seconds;
}

/** FrameScanner + StreamWriter into a fresh store, committing each full segment as the daemon does. */
async function scanAndStore(stream) {
  const dir = await tempDir('offline-store');
  const { store, writer } = await newArchive(path.join(dir, 'store'), Date.now());
  try {
    const scanner = new FrameScanner({ startAt: 1 });
    const t0 = performance.now();
    let appendMs = 0;
    let pending = Promise.resolve();
    for (const chunk of stream.chunks) {
      const now = Date.now();
      const a0 = performance.now();
      // As the daemon does (replication/session.ts): the command's kind from its name's bytes.
      scanner.scan(chunk, (f) =>
        writer.appendFrame(f, now, kindAt(f.buf, f.nameStart, f.nameLength)),
      );
      writer.settle();
      appendMs += performance.now() - a0;
      if (writer.full) {
        pending = writer.flush();
        // As the daemon does: reading waits once two segments' worth is buffered.
        if (writer.bufferedBytes > 2 * SEGMENT_BYTES) await pending;
      }
    }
    await writer.flush();
    await pending;
    return { seconds: (performance.now() - t0) / 1000, appendSeconds: appendMs / 1000 };
  } finally {
    await store.close();
    await removeDir(dir);
  }
}

export async function offlineRows(cfg, _want, progress) {
  const { commands, reps } = cfg.offline;
  const rdb = await emptyRdb();
  const t0 = performance.now();
  const stream = generateStream(commands);
  progress(
    `offline: generated ${fmtCount(commands)} commands, ${fmtBytes(stream.bytes)} in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  const rfRuns = [];
  const repRuns = [];
  for (let i = 0; i < reps; i++) {
    rfRuns.push(await viaRf(rdb, stream));
    progress(
      `offline ${i + 1}/${reps} rf listen: ${fmtRate(commands / rfRuns.at(-1).seconds, 'cmd/s')}`,
    );
    repRuns.push(await viaReplica(rdb, stream));
    progress(
      `offline ${i + 1}/${reps} replica: ${fmtRate(commands / repRuns.at(-1).seconds, 'cmd/s')}`,
    );
  }
  const scan = median([scanOnly(stream), scanOnly(stream)]);
  const stored = await scanAndStore(stream);
  const rfRate = commands / median(rfRuns.map((r) => r.seconds));
  const repRate = commands / median(repRuns.map((r) => r.seconds));
  const mbps = (s) => `${(stream.bytes / s / 1024 ** 2).toFixed(0)} MiB/s`;
  return [
    row({
      id: '3',
      name: 'capture rate offline (headroom)',
      workload: `${fmtCount(commands)} generated SET/INCR/LPUSH/HSET/ZADD (${fmtBytes(stream.bytes)}) served by a local fake master to the real \`rf listen\` process, timed from its first ACK to the ACK of the last byte; median of ${reps}`,
      rf: `${fmtRate(rfRate, 'cmd/s')} (${mbps(median(rfRuns.map((r) => r.seconds)))})`,
      reference: `${fmtRate(repRate, 'cmd/s')} redis-server replica fed the same stream`,
      ratio: rfRate / repRate,
      target: 'none (headroom)',
      met: null,
      notes: [
        `where rf's time goes, same stream in one process: FrameScanner alone ${fmtRate(commands / scan, 'cmd/s')}; FrameScanner + StreamWriter.appendFrame ${fmtRate(commands / stored.appendSeconds, 'cmd/s')}; + fsynced LevelDB segment commits ${fmtRate(commands / stored.seconds, 'cmd/s')}`,
        `CPU seconds for the stream: rf listen ${median(rfRuns.map((r) => r.cpu)).toFixed(2)}, redis-server replica ${median(repRuns.map((r) => r.cpu)).toFixed(2)}; rf listen peak RSS ${fmtBytes(Math.max(...rfRuns.map((r) => r.rss)))}`,
      ],
      data: { commands, streamBytes: stream.bytes, rfRuns, repRuns, scanSeconds: scan, stored },
    }),
  ];
}
