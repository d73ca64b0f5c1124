import { encodeCommand } from '../resp/encode.js';
import { commandName, parseArgs } from '../store/commands.js';

/**
 * Redis 6 propagates expiries as the client gave them, relative to the moment the master ran
 * the command: `EXPIRE k 100`, `PEXPIRE k 100` (GETEX's rewrite too), `SET k v PX 100` (SETEX,
 * PSETEX and SET EX are rewritten so; 6.2 t_string.c setGenericCommand), `RESTORE k 100 v`.
 * Only its AOF gets absolute times (aof.c catAppendOnlyExpireAtCommand); Redis 7.0 propagates
 * absolute ones too. Replayed later as they are, each expiry would move by however long after
 * the capture the restore runs. So a write of a Redis 6 timeline is rewritten with the
 * absolute time its capture implies, as Redis 6 does for its own AOF: off by at most the
 * capture latency, the same as every other time in the archive.
 */
const RELATIVE = new Set(['expire', 'pexpire', 'set', 'setex', 'psetex', 'restore']);

const lower = (b: Buffer | undefined) => b?.toString('latin1').toLowerCase();
const int = (b: Buffer | undefined): number | null => {
  const n = Number(b?.toString('latin1'));
  return Number.isSafeInteger(n) ? n : null;
};

/** The frame with its expiry made absolute, or null when it has none to translate. */
export function absoluteExpiry(frame: Buffer, capturedAt: number): Buffer | null {
  const name = commandName(frame);
  if (!RELATIVE.has(name)) return null;
  const args = parseArgs(frame);
  const s = (v: number) => Buffer.from(String(v));
  switch (name) {
    case 'expire':
    case 'pexpire': {
      const n = int(args[2]);
      if (n === null) return null;
      const at = capturedAt + (name === 'expire' ? n * 1000 : n);
      return encodeCommand([Buffer.from('PEXPIREAT'), args[1]!, s(at), ...args.slice(3)]);
    }
    case 'setex':
    case 'psetex': {
      const n = int(args[2]);
      if (n === null || args[3] === undefined) return null;
      const at = capturedAt + (name === 'setex' ? n * 1000 : n);
      return encodeCommand([Buffer.from('SET'), args[1]!, args[3], Buffer.from('PXAT'), s(at)]);
    }
    case 'set': {
      for (let i = 3; i + 1 < args.length; i++) {
        const opt = lower(args[i]);
        if (opt !== 'ex' && opt !== 'px') continue;
        const n = int(args[i + 1]);
        if (n === null) return null;
        const out = [...args];
        out[i] = Buffer.from('PXAT');
        out[i + 1] = s(capturedAt + (opt === 'ex' ? n * 1000 : n));
        return encodeCommand(out);
      }
      return null;
    }
    case 'restore': {
      const ttl = int(args[2]);
      if (ttl === null || ttl === 0 || args.slice(4).some((a) => lower(a) === 'absttl'))
        return null;
      const out = [...args];
      out[2] = s(capturedAt + ttl);
      return encodeCommand([...out, Buffer.from('ABSTTL')]);
    }
  }
  return null;
}
