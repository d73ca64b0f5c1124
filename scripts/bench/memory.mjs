/**
 * Row 8: peak RSS of `rf listen` through a large snapshot and of `rf restore` of it. The master
 * is filled with DEBUG POPULATE and saves without compression (rdbcompression no), so the
 * snapshot on the wire is as large as the data. The reference for listen is redis-cli --rdb,
 * Redis's own tool that streams a snapshot to a file; for restore, the snapshot's size (what a
 * restore that held it in memory would need).
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  diskUsage,
  peakRss,
  removeDir,
  runOk,
  startRedis,
  tempDir,
  waitReplicaOnline,
} from './env.mjs';
import { fmtBytes, fmtCount, fmtSeconds, row } from './format.mjs';
import { rfOk, startListen } from './rf.mjs';
import { redisBenchmark } from './workloads.mjs';

const LIMIT = 200e6;

export async function memoryRows(cfg, _want, progress) {
  const { snapshotBytes, valueBytes } = cfg.memory;
  const keys = Math.round(snapshotBytes / (valueBytes + 24));
  const master = await startRedis({
    label: 'memory-master',
    args: [
      '--enable-debug-command',
      'yes',
      '--rdbcompression',
      'no',
      '--repl-diskless-sync-delay',
      '0',
    ],
  });
  const dir = await tempDir('memory');
  let listen = null;
  try {
    await master.client.call('DEBUG', 'POPULATE', String(keys), 'key', String(valueBytes));
    const usedMemory = Number((await master.info('memory')).used_memory);

    const rdbFile = path.join(dir, 'redis-cli.rdb');
    const cli = await runOk(
      'redis-cli',
      ['-h', '127.0.0.1', '-p', String(master.port), '--rdb', rdbFile],
      {
        measure: true,
      },
    );
    const rdbBytes = (await stat(rdbFile)).size;
    await removeDir(rdbFile);
    progress(
      `memory: ${fmtCount(keys)} keys, snapshot ${fmtBytes(rdbBytes)}; redis-cli --rdb peak ${fmtBytes(cli.usage?.peakRssBytes)}`,
    );

    const store = path.join(dir, 'store');
    const t0 = performance.now();
    listen = await startListen(master.url, store, path.join(dir, 'listen.log'));
    await waitReplicaOnline(master.client, 600_000);
    const snapshotSeconds = (performance.now() - t0) / 1000;
    const afterSnapshot = peakRss(listen.pid);
    // Then stream writes on top, as the daemon does once the base is in.
    await redisBenchmark(master.port, 20_000);
    await master.client.call('WAIT', '1', '60000');
    const listenPeak = peakRss(listen.pid);
    const stopped = await listen.stop();
    listen = null;
    if (stopped.code !== 0) {
      throw new Error(
        `rf listen exited with ${stopped.code ?? stopped.signal} ${stopped.seconds.toFixed(1)} s after SIGTERM:\n${stopped.log}`,
      );
    }
    const baseBytes = await diskUsage(path.join(store, 'bases'));
    progress(
      `memory: rf listen took the snapshot in ${fmtSeconds(snapshotSeconds)}, peak ${fmtBytes(listenPeak)}`,
    );

    const restored = await rfOk(
      ['restore', '--store', store, '--until', 'latest', '--out', path.join(dir, 'out')],
      {
        measure: true,
      },
    );
    const restorePeak = restored.usage?.peakRssBytes ?? Number.NaN;
    const workload = `${fmtCount(keys)} keys of ${valueBytes} B (DEBUG POPULATE; used_memory ${fmtBytes(usedMemory)}), snapshot ${fmtBytes(rdbBytes)} uncompressed${snapshotBytes < 1024 ** 3 ? '; quick run: smaller than the 1 GiB of the full run' : ''}`;
    return [
      row({
        id: '8a',
        name: 'memory: rf listen peak RSS',
        workload: `${workload}; diskless full sync, then 100k writes`,
        rf: `${fmtBytes(listenPeak)} (${fmtBytes(afterSnapshot)} by the end of the snapshot, taken in ${fmtSeconds(snapshotSeconds)})`,
        reference: `${fmtBytes(cli.usage?.peakRssBytes)}: redis-cli --rdb of the same snapshot (${fmtSeconds(cli.ms / 1000)})`,
        ratio: listenPeak / (cli.usage?.peakRssBytes ?? Number.NaN),
        target: '< 200 MB',
        met: listenPeak < LIMIT,
        notes: [`base stored: ${fmtBytes(baseBytes)}`],
        data: {
          keys,
          rdbBytes,
          usedMemory,
          listenPeak,
          afterSnapshot,
          snapshotSeconds,
          cli: cli.usage,
        },
      }),
      row({
        id: '8b',
        name: 'memory: rf restore --out peak RSS',
        workload,
        rf: `${fmtBytes(restorePeak)} (${fmtSeconds(restored.ms / 1000)})`,
        reference: `${fmtBytes(rdbBytes)}: the snapshot, which a restore that held it would need`,
        ratio: restorePeak / rdbBytes,
        target: 'flat (< 200 MB)',
        // Without /usr/bin/time there is no exact peak for a short-lived process: say so, not "no".
        met: Number.isFinite(restorePeak) ? restorePeak < LIMIT : null,
        data: { restorePeak, restoreSeconds: restored.ms / 1000 },
      }),
    ];
  } finally {
    await listen?.stop();
    await master.stop();
    await removeDir(dir);
  }
}
