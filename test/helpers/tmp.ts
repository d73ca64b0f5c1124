import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative } from 'node:path';

/** A fresh directory under the OS temp dir, `rf-test-XXXXXX` unless another prefix is given. */
export function makeTempDir(prefix = 'rf-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Keeps the directory for a post-mortem when `RF_KEEP_TEST_DIRS=1`. */
export async function removeTempDir(dir: string): Promise<void> {
  if (process.env.RF_KEEP_TEST_DIRS === '1') return;
  const inside = relative(tmpdir(), dir);
  // A wrong argument must not become `rm -rf` of something that is not a test directory.
  if (inside === '' || inside.startsWith('..') || isAbsolute(inside)) {
    throw new TypeError(`removeTempDir: ${dir} is not inside ${tmpdir()}`);
  }
  await rm(dir, { recursive: true, force: true });
}
