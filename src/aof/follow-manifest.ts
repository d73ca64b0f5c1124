import { promises as fs } from 'node:fs';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import { startsWithRdb } from '../rdb/length.js';
import type { AofBaseFormat, AofGap, BaseOffer } from '../store/chunks.js';
import { readExactly } from './file-read.js';
import type { FollowHost } from './follow.js';
import type { AofLayout } from './layout.js';
import { type Manifest, parseManifest } from './manifest.js';
import type { HeldState } from './sink.js';
import { aofDirError, newRecord, type Tracked, track } from './tracked.js';

/**
 * Follows a Redis 7 multi-part AOF through its manifest (aof.c): the incr files it lists, in
 * seq order, the one Redis writes to being the last; the base of each rewrite, copied whole;
 * and incr files that came and went between two looks, recorded as gaps.
 */
export class ManifestFollower {
  /** The manifest's inode, size and mtime when last read: a new one is renamed into place. */
  private stamp = '';
  /** The last manifest read (the size sampler counts the files it lists). */
  manifest: Manifest | null = null;
  private lastIncrSeq = 0;

  constructor(
    private readonly host: FollowHost,
    private readonly onManifest: (m: Manifest) => void,
  ) {}

  /** Where numbering resumes: the highest incr seq the receiver holds. */
  resumeFrom(held: HeldState): void {
    this.lastIncrSeq = Math.max(
      0,
      ...held.files.filter((f) => f.kind === 'incr').map((f) => f.seq),
    );
  }

  /** Forgets the manifest read, so the next refresh reads it again (after a resync). */
  reset(): void {
    this.stamp = '';
    this.manifest = null;
  }

  async refresh(layout: Extract<AofLayout, { kind: 'multi-part' }>): Promise<void> {
    const s = this.host.state;
    const p = path.join(layout.dir, layout.manifest);
    let stamp: string;
    try {
      const st = await fs.stat(p);
      // Redis renames a new manifest into place (aof.c writeAofManifestFile): a new inode each time.
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (err) {
      this.host.warnOnce(
        'manifest-missing',
        { manifest: p, errno: errnoCode(err) },
        'the AOF manifest is gone; was appendonly turned off? Finishing the files already open',
      );
      for (const f of s.files) f.done = true;
      return;
    }
    if (stamp === this.stamp) return;
    const bytes = await fs.readFile(p);
    const manifest = parseManifest(bytes, p);
    this.stamp = stamp;
    this.manifest = manifest;
    this.host.clearWarning('manifest-missing');
    this.onManifest(manifest);

    for (const entry of manifest.incrs) {
      const fp = path.join(layout.dir, entry.name);
      if (s.files.some((f) => f.record.name === entry.name && f.record.seq === entry.seq)) continue;
      const fh = await fs.open(fp, 'r').catch((err: unknown) => {
        // Listed but not there: the manifest moved on after it was read; the next look sees it.
        if (errnoCode(err) === 'ENOENT') return null;
        throw aofDirError(layout.dir, fp, err);
      });
      if (fh === null) {
        this.stamp = '';
        continue;
      }
      const ino = (await fh.stat()).ino;
      const key = `incr\0${entry.name}\0${entry.seq}\0${ino}`;
      if (s.seen.has(key)) {
        await fh.close();
        continue;
      }
      const held = s.held.files.find(
        (r) => r.kind === 'incr' && r.name === entry.name && r.seq === entry.seq && r.ino === ino,
      );
      if (held?.ended) {
        s.seen.set(key, held.fileNo);
        await fh.close();
        continue;
      }
      let f: Tracked;
      if (held !== undefined) {
        f = await this.host.resume(held, fp, fh);
      } else {
        await this.noteMissedIncrs(entry.seq);
        const record = await this.host.sink.putFile(
          newRecord(s.nextFileNo++, entry.name, 'incr', entry.seq, ino, 0),
        );
        f = track(record, fp, fh);
        this.host.log.info(
          { file: entry.name, seq: entry.seq, fileNo: record.fileNo },
          'following a new incr file',
        );
      }
      s.seen.set(key, f.record.fileNo);
      s.files.push(f);
      this.lastIncrSeq = Math.max(this.lastIncrSeq, entry.seq);
    }
    s.files.sort((a, b) => a.record.fileNo - b.record.fileNo);
    // Redis writes only to the last incr: flushAppendOnlyFile(1) runs before openNewIncrAofForAppend
    // persists a manifest with a newer one (aof.c rewriteAppendOnlyFileBackground).
    const newest = manifest.incrs.at(-1);
    for (const f of s.files) {
      if (f.done || f.record.kind !== 'incr') continue;
      const isNewest =
        newest !== undefined && f.record.name === newest.name && f.record.seq === newest.seq;
      if (!isNewest) {
        f.done = true;
        this.host.log.info(
          { file: f.record.name, fileNo: f.record.fileNo },
          'Redis moved on from this incr file: finishing it',
        );
      }
    }

    const base = manifest.base;
    if (base !== null) {
      const fp = path.join(layout.dir, base.name);
      const fh = await fs.open(fp, 'r').catch(() => null);
      if (fh === null) {
        this.stamp = '';
        return;
      }
      const st = await fh.stat();
      const key = `base\0${base.name}\0${base.seq}\0${st.ino}`;
      const held = s.held.bases.find(
        (b) => b.name === base.name && b.seq === base.seq && b.ino === st.ino,
      );
      if (
        s.seen.has(key) ||
        held !== undefined ||
        s.pendingBases.some((b) => b.path === fp && b.offer.seq === base.seq)
      ) {
        if (held !== undefined) s.seen.set(key, held.fileNo);
        await fh.close();
        return;
      }
      const first = manifest.incrs[0];
      const firstFileNo =
        first === undefined
          ? null
          : (s.files.find((f) => f.record.name === first.name && f.record.seq === first.seq)?.record
              .fileNo ??
            [...s.seen.entries()].find(([k]) =>
              k.startsWith(`incr\0${first.name}\0${first.seq}\0`),
            )?.[1] ??
            null);
      const format: AofBaseFormat = base.name.endsWith('.rdb')
        ? 'rdb'
        : base.name.endsWith('.aof')
          ? 'aof'
          : startsWithRdb((await readExactly(fh, 0, Math.min(5, st.size))) ?? Buffer.alloc(0))
            ? 'rdb'
            : 'aof';
      const offer: BaseOffer = {
        fileNo: s.nextFileNo++,
        name: base.name,
        seq: base.seq,
        ino: st.ino,
        format,
        bytes: st.size,
        firstFileNo,
      };
      s.seen.set(key, offer.fileNo);
      s.pendingBases.push({ offer, path: fp, fh });
      this.host.log.info(
        { file: base.name, seq: base.seq, bytes: st.size, fileNo: offer.fileNo },
        'new AOF base: copying it',
      );
    }
  }

  /**
   * Redis numbers incr files one after another (aof.c getNewIncrAofName). A seq skipped since
   * the last one followed is a file created and deleted between two looks (two rewrites in a row
   * faster than the poll): its bytes are lost to this capture, and that is recorded.
   */
  private async noteMissedIncrs(seq: number): Promise<void> {
    const s = this.host.state;
    if (this.lastIncrSeq === 0 || seq <= this.lastIncrSeq + 1) return;
    for (let missed = this.lastIncrSeq + 1; missed < seq; missed++) {
      const name = `${this.manifest?.incrs[0]?.name.replace(/\.\d+\.incr\.aof$/, '') ?? 'appendonly.aof'}.${missed}.incr.aof`;
      // A number of its own, as the file would have had: under the next file's number the gaps
      // of two missed files would share one key, and one would be lost.
      const gap: AofGap = {
        fileNo: s.nextFileNo++,
        file: name,
        start: 0,
        end: null,
        at: Date.now(),
        reason: 'file-deleted',
      };
      this.host.log.warn(
        { file: name, seq: missed },
        'an incr file came and went between two looks at the manifest: its writes are missing from the AOF capture',
      );
      await this.host.recordGap(gap);
    }
  }
}
