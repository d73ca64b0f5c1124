import { promises as fs } from 'node:fs';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import { rdbLength, startsWithRdb } from '../rdb/length.js';
import type { BaseOffer } from '../store/chunks.js';
import { readExactly } from './file-read.js';
import type { FollowHost } from './follow.js';
import type { AofLayout } from './layout.js';
import type { HeldState } from './sink.js';
import { aofDirError, newRecord, track } from './tracked.js';

/**
 * Follows a Redis 6 single `appendonly.aof`: each rewrite renames a new file over it, a new
 * generation whose RDB preamble (aof-use-rdb-preamble) is its base and whose commands are cut
 * into chunks.
 */
export class SingleFileFollower {
  /** rf's count of the generations of the file it has seen. */
  private singleSeq = 0;

  constructor(private readonly host: FollowHost) {}

  resumeFrom(held: HeldState): void {
    this.singleSeq = Math.max(
      0,
      ...held.files.filter((f) => f.kind === 'single').map((f) => f.seq),
    );
  }

  async refresh(layout: Extract<AofLayout, { kind: 'single' }>): Promise<void> {
    const s = this.host.state;
    const fp = path.join(layout.dir, layout.file);
    let ino: number;
    try {
      ino = (await fs.stat(fp)).ino;
    } catch (err) {
      this.host.warnOnce(
        'single-missing',
        { file: fp, errno: errnoCode(err) },
        'the append-only file is gone; was appendonly turned off? Finishing what is open',
      );
      for (const f of s.files) f.done = true;
      return;
    }
    this.host.clearWarning('single-missing');
    const current = s.files.at(-1);
    if (current !== undefined && current.record.ino === ino) return;
    if (s.seen.has(`single\0${layout.file}\0${ino}`)) return;
    // A Redis 6 rewrite renames a new file over the old one (aof.c backgroundRewriteDoneHandler):
    // the old inode gets nothing more.
    for (const f of s.files) {
      if (!f.done)
        this.host.log.info(
          { file: f.record.name, fileNo: f.record.fileNo },
          'the append-only file was replaced (rewrite): finishing the old one',
        );
      f.done = true;
    }
    const fh = await fs.open(fp, 'r').catch((err: unknown) => {
      if (errnoCode(err) === 'ENOENT') return null;
      throw aofDirError(layout.dir, fp, err);
    });
    if (fh === null) return;
    const st = await fh.stat();
    if (st.ino !== ino) {
      await fh.close();
      return;
    }
    const held = s.held.files
      .filter(
        (r) => r.kind === 'single' && r.name === layout.file && r.ino === ino && r.ended === null,
      )
      .at(-1);
    if (held !== undefined) {
      s.seen.set(`single\0${layout.file}\0${ino}`, held.fileNo);
      s.files.push(await this.host.resume(held, fp, fh));
      return;
    }
    // Whether the file starts with an RDB preamble is known from its first byte: Redis writes
    // the preamble before the file is renamed into place, and a file without one starts with a
    // command or an annotation.
    const head = (await readExactly(fh, 0, Math.min(st.size, 5))) ?? Buffer.alloc(0);
    if (head.length === 0 || (head[0] === 0x52 && head.length < 5)) {
      await fh.close();
      return;
    }
    let chunkStart = 0;
    if (startsWithRdb(head)) chunkStart = await rdbLength(fh, st.size, fp);
    this.singleSeq++;
    const record = await this.host.sink.putFile(
      newRecord(s.nextFileNo++, layout.file, 'single', this.singleSeq, ino, chunkStart),
    );
    s.seen.set(`single\0${layout.file}\0${ino}`, record.fileNo);
    const offer: BaseOffer = {
      fileNo: s.nextFileNo++,
      name: layout.file,
      seq: this.singleSeq,
      ino,
      format: chunkStart > 0 ? 'rdb-preamble' : 'empty',
      bytes: chunkStart,
      firstFileNo: record.fileNo,
    };
    // The preamble is read through a second descriptor, closed once it is copied.
    const baseFh = await fs.open(fp, 'r');
    s.pendingBases.push({ offer, path: fp, fh: baseFh });
    s.files.push(track(record, fp, fh));
    this.host.log.info(
      {
        file: layout.file,
        generation: this.singleSeq,
        fileNo: record.fileNo,
        preamble: chunkStart,
      },
      'following a new append-only file',
    );
  }
}
