/**
 * Rows 1 and 2: the master's throughput under redis-benchmark with rf attached, with a real
 * replica attached, with a null replica (null-replica.mjs: the stream read into nothing, the
 * floor any consumer can reach) and with nothing attached, interleaved; and how far behind each
 * attached replica is when the load ends.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import {
  cpuSeconds,
  firstReplica,
  median,
  peakRss,
  RF_BEFORE_MAIN,
  RF_LISTEN_NICE,
  removeDir,
  sleep,
  spawnTracked,
  startRedis,
  stopProcess,
  tempDir,
  waitNoReplica,
  waitReplicaOnline,
} from './env.mjs';
import { fmtBytes, fmtCount, fmtRate, fmtSeconds, row } from './format.mjs';
import { startListen } from './rf.mjs';
import { segmentStats } from './store.mjs';
import { BENCH_TESTS, KEYSPACE, redisBenchmark } from './workloads.mjs';

/** 'rf-before': the build RF_BENCH_BEFORE_CLI names, when it is set. */
const KINDS = ['none', 'null', 'replica', 'rf', ...(RF_BEFORE_MAIN ? ['rf-before'] : [])];
const NULL_REPLICA = fileURLToPath(new URL('./null-replica.mjs', import.meta.url));

async function attach(kind, master) {
  if (kind === 'none') return { kind, pid: null, async detach() {} };
  if (kind === 'null') {
    const child = spawnTracked(process.execPath, [NULL_REPLICA, String(master.port)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let acked = Number.NaN;
    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (text) => {
      const lines = text.trim().split('\n');
      acked = Number(lines[lines.length - 1]);
    });
    await waitReplicaOnline(master.client);
    return {
      kind,
      pid: child.pid,
      /** The offset it last acknowledged: it applies nothing. */
      async applied() {
        return acked;
      },
      async detach() {
        const { code, signal } = await stopProcess(child);
        await waitNoReplica(master.client);
        return { exit: code ?? signal, warnings: 0 };
      },
    };
  }
  if (kind === 'replica') {
    const replica = await startRedis({
      label: 'capture-replica',
      args: ['--replicaof', '127.0.0.1', String(master.port)],
    });
    await waitReplicaOnline(master.client);
    return {
      kind,
      pid: replica.pid,
      /** The offset the replica has processed (its own INFO). */
      async applied() {
        return Number((await replica.info('replication')).slave_repl_offset);
      },
      async detach() {
        await replica.stop();
        await waitNoReplica(master.client);
        return { exit: 0, warnings: 0 };
      },
    };
  }
  const dir = await tempDir('capture-rf');
  const listen = await startListen(
    master.url,
    path.join(dir, 'store'),
    path.join(dir, 'listen.log'),
    [],
    kind === 'rf-before' ? RF_BEFORE_MAIN : undefined,
  );
  await waitReplicaOnline(master.client);
  return {
    kind,
    pid: listen.pid,
    listen,
    async applied() {
      return (await listen.status())?.durableOffset ?? Number.NaN;
    },
    async detach() {
      const stopped = await listen.stop();
      const log = readFileSync(listen.logFile, 'utf8');
      const reconnects = (log.match(/replication connection lost/g) ?? []).length;
      const segments = await segmentStats(path.join(dir, 'store'));
      await removeDir(dir);
      await waitNoReplica(master.client);
      return {
        exit: stopped.code ?? stopped.signal,
        stopSeconds: stopped.seconds,
        stopLog: stopped.code === 0 ? null : stopped.log,
        reconnects,
        segments,
      };
    },
  };
}

/**
 * Bytes behind at the moment the load ends (from the master's INFO: what the replica last
 * acknowledged; from the replica itself: what it has made durable or applied), then the time
 * until it has acknowledged everything: a probe write and WAIT 1, which makes the master ask for
 * an ACK at once (REPLCONF GETACK) instead of waiting for the replica's next one-second ACK.
 */
async function measureLag(master, attached, loadEndedAt) {
  const [info, applied] = await Promise.all([master.info('replication'), attached.applied()]);
  const masterOffset = Number(info.master_repl_offset);
  const acked = Number(firstReplica(info)?.offset ?? Number.NaN);
  await master.client.call('SET', 'rf-bench:probe', String(Date.now()));
  const n = await master.client.call('WAIT', '1', '60000');
  const seconds = (performance.now() - loadEndedAt) / 1000;
  return {
    ackedBehind: masterOffset - acked,
    appliedBehind: masterOffset - applied,
    seconds: Number(n) >= 1 ? seconds : Number.NaN,
  };
}

/**
 * Brings an attached process to its steady state before it is measured: a load of its own, not
 * counted, then until it has acknowledged all of it. A long-running rf has compiled its hot paths
 * and sized its buffers long before; a fresh one would be measured doing that. Every kind, `none`
 * included, gets the same load, so the master starts each measured run in the same state.
 */
async function warmUp(master, kind, n) {
  await redisBenchmark(master.port, n);
  if (kind !== 'none') await master.client.call('WAIT', '1', '60000');
}

export async function captureRows(cfg, want, progress) {
  const { requestsPerTest: n, reps, warmUpPerTest } = cfg.capture;
  const master = await startRedis({
    label: 'capture-master',
    // Attach at once instead of after the 5 s a diskless master waits for more replicas.
    args: ['--repl-diskless-sync-delay', '0'],
  });
  const runs = [];
  try {
    // Warm up the master (allocator, backlog) with a replica attached; not counted.
    {
      const a = await attach('replica', master);
      await redisBenchmark(master.port, Math.max(10_000, Math.floor(n / 4)));
      await a.detach();
    }
    for (let rep = 0; rep < reps; rep++) {
      for (const kind of KINDS) {
        await master.client.call('FLUSHALL');
        const a = await attach(kind, master);
        await warmUp(master, kind, warmUpPerTest);
        await sleep(200);
        const cpu0 = a.pid === null ? null : cpuSeconds(a.pid);
        const masterCpu0 = cpuSeconds(master.pid);
        const offset0 = Number((await master.info('replication')).master_repl_offset);
        const bench = await redisBenchmark(master.port, n);
        const loadEndedAt = performance.now();
        const cpu = a.pid === null ? null : cpuSeconds(a.pid) - cpu0;
        const masterCpu = cpuSeconds(master.pid) - masterCpu0;
        const lag = kind === 'none' ? null : await measureLag(master, a, loadEndedAt);
        // The stream the load made (the lag probe's write included): what each consumer read.
        const streamBytes = Number((await master.info('replication')).master_repl_offset) - offset0;
        const rss = a.pid === null ? null : peakRss(a.pid);
        const detached = await a.detach();
        runs.push({
          rep,
          kind,
          rps: bench.rps,
          perTest: bench.perTest,
          cpu,
          masterCpu,
          streamBytes,
          lag,
          rss,
          detached,
        });
        progress(
          `capture ${rep + 1}/${reps} ${kind}: ${fmtRate(bench.rps)}${lag ? `, lag ${fmtSeconds(lag.seconds)}` : ''}`,
        );
      }
    }
  } finally {
    await master.stop();
  }

  const of = (kind) => runs.filter((r) => r.kind === kind);
  const med = (kind, f) => median(of(kind).map(f));
  const rps = Object.fromEntries(KINDS.map((k) => [k, med(k, (r) => r.rps)]));
  const range = (kind) => {
    const v = of(kind).map((r) => r.rps);
    return `${fmtRate(Math.min(...v), '')}–${fmtRate(Math.max(...v), '')}`;
  };
  const workload = `redis-benchmark -P 16 -t ${BENCH_TESTS.join(',')} -r ${fmtCount(KEYSPACE)} -n ${fmtCount(n)} (per test), ${reps}× interleaved none/null replica/replica/rf${RF_BEFORE_MAIN ? '/rf before' : ''}, medians; each attached process first takes an uncounted ${fmtCount(warmUpPerTest)}-per-test warm-up load`;
  const perTestRatio = BENCH_TESTS.map((t) => {
    const T = t.toUpperCase();
    const r = med('rf', (x) => x.perTest[T]) / med('replica', (x) => x.perTest[T]);
    return `${T} ${r.toFixed(2)}`;
  }).join(', ');
  /** The median over rounds of `of`'s throughput over `kind`'s in the same round. */
  const pairedOf = (of, kind) =>
    median(
      Array.from({ length: reps }, (_, rep) => {
        const at = (k) => runs.find((r) => r.rep === rep && r.kind === k)?.rps;
        return at(of) / at(kind);
      }),
    );
  const pairedWith = (kind) => pairedOf('rf', kind);
  const paired = pairedWith('replica');
  const pairedNull = pairedWith('null');
  /** CPU seconds a consumer spent per MB of stream it read, median over the rounds. */
  const cpuPerMB = (kind) => med(kind, (r) => r.cpu / (r.streamBytes / 1e6));
  const rfPeak = Math.max(...of('rf').map((r) => r.rss));
  const rfReconnects = of('rf').reduce((s, r) => s + (r.detached?.reconnects ?? 0), 0);
  const rows = [];
  if (want.has(1)) {
    const ratio = rps.rf / rps.replica;
    const ofNull = rps.rf / rps.null;
    rows.push(
      row({
        id: '1',
        name: 'capture overhead: master throughput',
        workload,
        rf: `${fmtRate(rps.rf)} with rf attached${RF_LISTEN_NICE === 0 ? '' : ` (at nice ${RF_LISTEN_NICE})`}`,
        reference: `${fmtRate(rps.replica)} with redis-server --replicaof; ${fmtRate(rps.null)} with a null replica (the stream read into nothing, ACK once a second); nothing attached: ${fmtRate(rps.none)}`,
        ratio,
        ratioText: `${ratio.toFixed(2)}× the replica, ${ofNull.toFixed(2)}× the null replica`,
        target: '≥ 0.95× the replica, ≥ 0.90× the null replica',
        met: ratio >= 0.95 && ofNull >= 0.9,
        notes: [
          `spread (min–max ops/s): rf ${range('rf')}, replica ${range('replica')}, null replica ${range('null')}, none ${range('none')}; median of the per-round ratios (each round runs them back to back): rf/replica ${paired.toFixed(2)}, rf/null replica ${pairedNull.toFixed(2)}`,
          `CPU seconds per MB of stream read (median): rf ${cpuPerMB('rf').toFixed(4)}, replica ${cpuPerMB('replica').toFixed(4)}, null replica ${cpuPerMB('null').toFixed(4)} (${fmtBytes(med('rf', (r) => r.streamBytes))} of stream a run)`,
          ...(RF_BEFORE_MAIN
            ? [
                `the build before (${RF_BEFORE_MAIN}), in the same rounds: ${fmtRate(rps['rf-before'])} (${range('rf-before')}); median of the per-round ratios rf/before ${pairedWith('rf-before').toFixed(2)}; before/replica ${pairedOf('rf-before', 'replica').toFixed(2)}, before/null replica ${pairedOf('rf-before', 'null').toFixed(2)}; CPU seconds per MB of stream read ${cpuPerMB('rf-before').toFixed(4)}`,
              ]
            : []),
          `per test, rf / replica: ${perTestRatio}`,
          `CPU seconds per run (median): rf ${med('rf', (r) => r.cpu).toFixed(2)}, replica ${med('replica', (r) => r.cpu).toFixed(2)}, null replica ${med('null', (r) => r.cpu).toFixed(2)}; master ${med('rf', (r) => r.masterCpu).toFixed(2)} with rf, ${med('replica', (r) => r.masterCpu).toFixed(2)} with replica, ${med('none', (r) => r.masterCpu).toFixed(2)} alone (2 cores shared by master, redis-benchmark and the replica)`,
          `rf listen peak RSS during the load: ${fmtBytes(rfPeak)}${rfPeak >= 200e6 ? ' (over the 200 MB the daemon may use)' : ''}; reconnects: ${rfReconnects}; exits after SIGTERM: ${of(
            'rf',
          )
            .map((r) => `${r.detached.exit} in ${r.detached.stopSeconds.toFixed(1)} s`)
            .join(', ')}`,
          `segments rf wrote under this load (--segment-size 1m): median ${fmtBytes(med('rf', (r) => r.detached.segments.medianBytes))}, largest ${fmtBytes(Math.max(...of('rf').map((r) => r.detached.segments.maxBytes)))}`,
        ],
        data: { runs, medians: rps, paired, pairedNull },
      }),
    );
  }
  if (want.has(2)) {
    const rfLag = med('rf', (r) => r.lag.seconds);
    const repLag = med('replica', (r) => r.lag.seconds);
    const worst = Math.max(...of('rf').map((r) => r.lag.seconds));
    rows.push(
      row({
        id: '2',
        name: 'capture lag at the end of the load',
        workload:
          'the row-1 runs: time from the end of redis-benchmark until WAIT 1 returns for a probe write',
        rf: `${fmtSeconds(rfLag)} (worst ${fmtSeconds(worst)}); ${fmtBytes(med('rf', (r) => r.lag.ackedBehind))} behind the last ACK, ${fmtBytes(med('rf', (r) => r.lag.appliedBehind))} not yet durable`,
        reference: `${fmtSeconds(repLag)}; ${fmtBytes(med('replica', (r) => r.lag.ackedBehind))} behind the last ACK, ${fmtBytes(med('replica', (r) => r.lag.appliedBehind))} not yet applied`,
        ratio: rfLag / repLag,
        target: '< 1 s',
        met: worst < 1,
        notes: [
          '"behind the last ACK" = master_repl_offset − the offset in INFO replication when the load ends; both replicas ACK once a second, so up to a second of writes shows there even when caught up',
        ],
        data: { lags: runs.filter((r) => r.lag !== null).map((r) => ({ kind: r.kind, ...r.lag })) },
      }),
    );
  }
  return rows;
}
