import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { replicationInfo, WriteLoad, waitFor } from '../helpers/load.js';
import { startRedis } from '../helpers/redis.js';
import { RfDaemon, rf } from '../helpers/rf.js';
import { testScope } from '../helpers/scope.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

const scope = testScope();

function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

describe('rf listen --metrics', () => {
  it('serves Prometheus series with sane values during a load', async () => {
    const r = await startRedis({
      args: ['--repl-diskless-sync-delay', '0', '--appendonly', 'yes'],
    });
    scope.defer(() => r.stop());
    const dir = await makeTempDir('rf-metrics-');
    scope.defer(() => removeTempDir(dir));
    const d = RfDaemon.start([
      '--source',
      r.url,
      '--store',
      path.join(dir, 'store'),
      '--metrics',
      '127.0.0.1:0',
      '--aof-dir',
      r.dir,
      '--chunk-size',
      '4k',
      '--base-every',
      '1h',
    ]);
    scope.defer(() => d.stop('SIGKILL'));
    const line = await d.waitForLog((l) => l.msg === 'metrics listening');
    const url = String(line.metrics);
    await d.waitForLog((l) => l.msg === 'first timeline started from the base');
    const c = await r.client();
    const load = new WriteLoad(c);
    load.start();
    await waitFor(() => load.sent > 2000, 'the load');

    const during = await fetch(url);
    expect(during.status).toBe(200);
    expect(during.headers.get('content-type')).toContain('text/plain');
    const m = parseMetrics(await during.text());
    expect(m.get('rf_connected')).toBe(1);
    expect(m.get('rf_timeline')).toBe(1);
    expect(m.get('rf_durable_offset')).toBeGreaterThan(0);
    expect(m.get('rf_received_offset')).toBeGreaterThanOrEqual(m.get('rf_durable_offset')!);
    expect(m.get('rf_segments_written_total')).toBeGreaterThan(0);
    expect(m.get('rf_stream_written_bytes_total')).toBeGreaterThan(0);
    expect(m.get('rf_bases_total')).toBe(1);
    expect(m.get('rf_base_age_seconds')).toBeGreaterThanOrEqual(0);
    expect(m.get('rf_base_age_seconds')).toBeLessThan(60);
    expect(m.get('rf_replication_lag_bytes')).toBeGreaterThanOrEqual(0);
    expect(m.get('rf_replication_lag_seconds')).toBeGreaterThanOrEqual(0);
    // The AOF record: its size on the host, sampled every second, and the chunks stored.
    expect(m.get('rf_aof_size_bytes')).toBeGreaterThan(0);
    expect(m.get('rf_chunks_written_total')).toBeGreaterThan(0);
    expect(m.get('rf_chunk_written_bytes_total')).toBeGreaterThan(0);
    expect(m.get('rf_aof_rewrite_cycles_total')).toBe(0);
    expect(m.has('rf_errors_total')).toBe(false);
    // What alerts compare with: the configured base period, the end of the archive, the disk.
    expect(m.get('rf_base_interval_seconds')).toBe(3600);
    const lastWrite = m.get('rf_last_durable_write_timestamp_seconds')!;
    expect(lastWrite).toBeGreaterThan(Date.now() / 1000 - 60);
    expect(lastWrite).toBeLessThanOrEqual(Date.now() / 1000);
    expect(m.get('rf_store_filesystem_avail_bytes')).toBeGreaterThan(0);
    expect(m.get('rf_store_filesystem_size_bytes')).toBeGreaterThanOrEqual(
      m.get('rf_store_filesystem_avail_bytes')!,
    );
    // The restorable window as rf info has it: from the first base to the last durable write.
    const info = await rf(['info', '--store', path.join(dir, 'store'), '--json']);
    const restorable = JSON.parse(info.stdout).sources[0].restorable as Array<{ from: string }>;
    expect(m.get('rf_restorable_from_timestamp_seconds')).toBe(
      Date.parse(restorable[0]!.from) / 1000,
    );
    expect(m.get('rf_restorable_until_timestamp_seconds')).toBeGreaterThanOrEqual(lastWrite);
    expect(m.get('rf_gaps')).toBe(0);
    // A standalone source's series carry no label, as dashboards built on them expect.
    expect([...m.keys()].filter((k) => k.includes('{'))).toEqual([]);

    await load.stop();
    await waitFor(async () => {
      const i = await replicationInfo(c);
      return i.replicas[0]?.offset === i.masterOffset;
    }, 'rf to catch up');
    const masterOffset = (await replicationInfo(c)).masterOffset;
    // The master offset is sampled once a second: wait for a sample taken after the load.
    let after = new Map<string, number>();
    await waitFor(
      async () => {
        after = parseMetrics(await (await fetch(url)).text());
        return after.get('rf_master_offset') === masterOffset;
      },
      'a fresh master offset sample',
      5_000,
    );
    expect(after.get('rf_durable_offset')).toBe(masterOffset);
    expect(after.get('rf_replication_lag_bytes')).toBe(0);
    expect(after.get('rf_replication_lag_seconds')).toBe(0);
    expect(after.get('rf_stream_written_bytes_total')).toBe(masterOffset);
    expect(after.get('rf_segments_written_total')).toBeGreaterThanOrEqual(
      m.get('rf_segments_written_total')!,
    );
    expect((await fetch(url.replace('/metrics', '/other'))).status).toBe(404);
    expect((await d.stop()).code).toBe(0);
  });
});
