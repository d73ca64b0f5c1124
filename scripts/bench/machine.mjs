/** The machine the figures come from: they only mean something next to it. */
import os from 'node:os';
import { run } from './env.mjs';

export async function machine() {
  const cpus = os.cpus();
  const model = (cpus[0]?.model ?? 'unknown cpu').replace(/\s+/g, ' ').trim();
  const memGiB = os.totalmem() / 1024 ** 3;
  const redis = /v=(\S+)/.exec((await run('redis-server', ['--version'])).stdout)?.[1] ?? 'unknown';
  const [l1, l5] = os.loadavg();
  const info = {
    cores: cpus.length,
    cpu: model,
    memoryGiB: Number(memGiB.toFixed(1)),
    redis,
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    loadAverage: [Number(l1.toFixed(2)), Number(l5.toFixed(2))],
  };
  info.line = `${info.cores} cores (${model}), ${info.memoryGiB} GiB RAM, ${info.kernel}, redis-server ${redis}, Node ${process.version}; load average at start ${info.loadAverage.join(' / ')}`;
  return info;
}
