import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The layers of src/, checked over the import graph (docs/ARCHITECTURE.md says the same in
 * prose). Each folder names the folders it may import; the files at the top of src/ (errors.ts,
 * time.ts, logger.ts, …) are the foundation every layer may use, and they import only each other.
 * Adding a folder means adding it here, with what it may import.
 */
const LAYERS: Record<string, readonly string[]> = {
  // The Redis protocol and its command vocabulary: bytes in, values out.
  resp: [],
  // The RDB format: CRC64, the trailer check, the preamble walker.
  rdb: [],
  // When writes happened: the master's offset clock and the imprecise windows.
  bounds: [],
  // LevelDB keys and codecs, segments, bases, timelines, the AOF record.
  store: ['resp', 'rdb', 'bounds'],
  replication: ['resp', 'rdb', 'store', 'bounds'],
  aof: ['resp', 'rdb', 'store'],
  restore: ['resp', 'rdb', 'store', 'bounds', 'replication'],
  verify: ['resp', 'rdb', 'store', 'bounds'],
  log: ['resp', 'store'],
  retention: ['store', 'restore'],
  // The archive in object storage: uploads what the store sealed, fetches what a restore needs.
  repo: ['store', 'restore'],
  doctor: ['resp', 'replication', 'store'],
  daemon: ['resp', 'store', 'bounds', 'replication', 'aof', 'retention', 'repo'],
  // rf ui's HTTP server and its page: it knows no store; the CLI hands it its endpoints.
  ui: [],
  cli: [
    'resp',
    'rdb',
    'bounds',
    'store',
    'replication',
    'aof',
    'restore',
    'verify',
    'log',
    'retention',
    'repo',
    'doctor',
    'daemon',
    'ui',
  ],
};
const FOUNDATION = '.';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');

interface Import {
  from: string;
  to: string;
  typeOnly: boolean;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) return sources(p);
    return d.name.endsWith('.ts') ? [p] : [];
  });
}

/** Every import and re-export of a file: static, dynamic and side-effect, with its specifier. */
function importsOf(file: string): { spec: string; typeOnly: boolean }[] {
  const text = readFileSync(file, 'utf8');
  const out: { spec: string; typeOnly: boolean }[] = [];
  for (const m of text.matchAll(
    /^\s*(import|export)(\s+type)?\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/gm,
  ))
    out.push({ spec: m[3]!, typeOnly: m[2] !== undefined });
  for (const m of text.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm))
    out.push({ spec: m[1]!, typeOnly: false });
  for (const m of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g))
    out.push({ spec: m[1]!, typeOnly: false });
  return out;
}

/** The folder of src/ a file lives in, or FOUNDATION for the files at the top. */
function layerOf(file: string): string {
  const rel = path.relative(SRC, file).split(path.sep);
  return rel.length > 1 ? rel[0]! : FOUNDATION;
}

function graph(): Import[] {
  const edges: Import[] = [];
  for (const file of sources(SRC)) {
    for (const { spec, typeOnly } of importsOf(file)) {
      const to = spec.startsWith('.')
        ? path.resolve(path.dirname(file), spec).replace(/\.js$/, '.ts')
        : spec;
      edges.push({ from: file, to, typeOnly });
    }
  }
  return edges;
}

/** The imports the layer table forbids, as `file -> import` lines. */
function forbiddenImports(edges: readonly Import[]): string[] {
  const bad: string[] = [];
  for (const e of edges) {
    if (!path.isAbsolute(e.to)) continue;
    const from = layerOf(e.from);
    const to = layerOf(e.to);
    if (from === to || to === FOUNDATION) continue;
    const allowed = from === FOUNDATION ? [] : LAYERS[from];
    if (allowed === undefined || !allowed.includes(to)) {
      bad.push(`${path.relative(SRC, e.from)} -> ${path.relative(SRC, e.to)}`);
    }
  }
  return bad;
}

describe('the layers of src/', () => {
  const edges = graph();

  it('sees the imports it checks', () => {
    // A parser that found nothing would pass everything.
    expect(edges.filter((e) => path.isAbsolute(e.to)).length).toBeGreaterThan(300);
    expect(
      edges.some((e) => e.from.endsWith('restore.ts') && e.to.endsWith('restore/restore.ts')),
    ).toBe(true);
  });

  it('has a rule for every folder', () => {
    const folders = new Set(sources(SRC).map(layerOf));
    folders.delete(FOUNDATION);
    expect([...folders].sort()).toEqual(Object.keys(LAYERS).sort());
  });

  it('is the layout docs/ARCHITECTURE.md and the README describe', () => {
    const root = path.join(SRC, '..');
    const doc = readFileSync(path.join(root, 'docs/ARCHITECTURE.md'), 'utf8');
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    for (const [folder, allowed] of Object.entries(LAYERS)) {
      expect(readme, folder).toContain(`src/${folder}/`);
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${folder}/\` |`));
      expect(row, folder).toBeDefined();
      // The last column says what the folder may import, as the table above has it.
      const said = row!.split('|').at(-2)!.trim();
      if (folder === 'cli') expect(said).toBe('everything above');
      else if (allowed.length === 0) expect(said, folder).toBe('nothing of rf');
      else expect(said.split(', ').sort(), folder).toEqual([...allowed].sort());
    }
  });

  it('keeps files small, or says at the top why one is not', () => {
    const long = sources(SRC).filter((f) => {
      const text = readFileSync(f, 'utf8');
      return text.split('\n').length > 400 && !text.startsWith('// Over 400 lines:');
    });
    expect(long.map((f) => path.relative(SRC, f))).toEqual([]);
  });

  it('imports only what each folder may import', () => {
    expect(forbiddenImports(edges)).toEqual([]);
  });

  it('catches a forbidden import', () => {
    const store = path.join(SRC, 'store/archive.ts');
    const daemon = path.join(SRC, 'daemon/backoff.ts');
    expect(forbiddenImports([{ from: store, to: daemon, typeOnly: false }])).toEqual([
      'store/archive.ts -> daemon/backoff.ts',
    ]);
  });

  it('keeps restore planning pure: nothing it runs reaches a node: module', () => {
    const plan = path.join(SRC, 'restore/plan.ts');
    const seen = new Set<string>();
    const reached: string[] = [];
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const e of edges) {
        if (e.from !== file || e.typeOnly) continue;
        if (e.to.startsWith('node:')) reached.push(`${path.relative(SRC, file)} -> ${e.to}`);
        else if (path.isAbsolute(e.to)) visit(e.to);
      }
    };
    visit(plan);
    expect(seen.size).toBeGreaterThan(1);
    expect(reached).toEqual([]);
  });
});
