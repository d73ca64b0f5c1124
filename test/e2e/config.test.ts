import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rf } from '../helpers/rf.js';
import { makeTempDir, removeTempDir } from '../helpers/tmp.js';

/** Precedence: flags > RF_* environment > config file > defaults; secrets never printed. */
let dir: string;
let file: string;

beforeAll(async () => {
  dir = await makeTempDir('rf-config-');
  file = path.join(dir, 'rf.yaml');
  await writeFile(
    file,
    [
      'store: /srv/rf-from-file',
      'name: from-file',
      'listen:',
      '  source: redis://rf:file-secret@10.0.0.1:6379',
      '  base-every: 6h',
      '  segment-size: 4m',
      '',
    ].join('\n'),
  );
});
afterAll(async () => removeTempDir(dir));

async function printConfig(args: string[], env: NodeJS.ProcessEnv = {}) {
  const res = await rf(['listen', '--print-config', '--json', ...args], { env });
  expect(res.code, res.stderr).toBe(0);
  return {
    config: JSON.parse(res.stdout) as Record<string, { value: unknown; source: string }>,
    raw: res.stdout,
  };
}

describe('configuration', () => {
  it('defaults when nothing is given', async () => {
    const { config } = await printConfig([], {
      RF_STORE: undefined,
      RF_SOURCE: undefined,
      REDIS_URL: undefined,
    });
    expect(config.store).toEqual({ value: './rf-data', source: 'default' });
    expect(config.source).toEqual({ value: 'redis://127.0.0.1:6379', source: 'default' });
    expect(config.name).toEqual({ value: 'default', source: 'default' });
  });

  it('flags beat the environment, which beats the file, which beats the defaults', async () => {
    const { config, raw } = await printConfig(['--config', file, '--segment-size', '8m'], {
      RF_NAME: 'from-env',
      RF_STORE: undefined,
    });
    // Values are shown as rf reads them: bytes and milliseconds, from whichever source.
    expect(config['segment-size']).toEqual({ value: 8 * 1024 * 1024, source: 'cli' });
    expect(config.name).toEqual({ value: 'from-env', source: 'env' });
    expect(config.store).toEqual({ value: '/srv/rf-from-file', source: 'config' });
    expect(config['base-every']).toEqual({ value: 6 * 3600_000, source: 'config' });
    expect(config['flush-interval']).toEqual({ value: 250, source: 'default' });
    expect(config.source).toEqual({ value: 'redis://rf:***@10.0.0.1:6379', source: 'config' });
    expect(raw).not.toContain('file-secret');
  });

  it('RF_CONFIG names the file; REDIS_URL counts as environment for --source', async () => {
    const { config, raw } = await printConfig([], {
      RF_CONFIG: file,
      REDIS_URL: 'redis://:env-secret@127.0.0.2:7000',
      RF_STORE: undefined,
    });
    expect(config.source).toEqual({ value: 'redis://:***@127.0.0.2:7000', source: 'env' });
    expect(config.store?.source).toBe('config');
    expect(raw).not.toContain('env-secret');
  });

  it('an unknown key in the file is refused with RF_USAGE naming it', async () => {
    const bad = path.join(dir, 'bad.yaml');
    await writeFile(bad, 'listen:\n  segmnet-size: 1m\n');
    const res = await rf(['listen', '--print-config', '--config', bad]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('RF_USAGE');
    expect(res.stderr).toContain('segmnet-size');
  });

  it('a bad value from the environment or the file is RF_USAGE naming where it came from', async () => {
    const env = await rf(['listen', '--print-config'], { env: { RF_CHUNK_SIZE: 'lots' } });
    expect(env.code).toBe(2);
    expect(env.stderr).toContain('RF_USAGE: RF_CHUNK_SIZE: --chunk-size takes a positive size');
    const bad = path.join(dir, 'bad-value.yaml');
    await writeFile(bad, 'listen:\n  flush-interval: soon\n');
    const res = await rf(['listen', '--print-config', '--config', bad]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(`RF_USAGE: flush-interval in ${bad}: --flush-interval "soon"`);
  });

  it('a file that is not YAML is refused', async () => {
    const bad = path.join(dir, 'broken.yaml');
    await writeFile(bad, 'store: [unclosed\n');
    const res = await rf(['info', '--config', bad]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('not valid YAML');
  });
});
