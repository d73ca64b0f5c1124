import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  hkdfSync,
  randomBytes,
} from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGunzip, createGzip, gunzip, gzipSync } from 'node:zlib';
import { errnoCode, RfError } from '../errors.js';

/**
 * How an object's bytes lie in the bucket. With a key (`--repo-key-file`): compressed, then
 * encrypted with AES-256-GCM under a key derived for that object alone (HKDF-SHA256 over the
 * archive key, a random salt and the object's name), so an object copied under another name,
 * or read with another key, does not authenticate.
 *
 *   "RFE1" | salt (16) | iv (12) | ciphertext of gzip(content) | GCM tag (16)
 *
 * Compression comes first because ciphertext does not compress. Without a key, a pack or a
 * manifest is compressed alone ("RFZ1" | gzip(content)): the stream's RESP repeats command
 * names and key prefixes, so a restore from the bucket downloads a fraction of its bytes. A
 * base file without a key is stored as it is (an RDB compresses its own values), and so were
 * packs written before: content with neither mark is read as it is.
 */
const gunzipAsync = promisify(gunzip);
/**
 * zlib's output in one piece of the content's size, which a gzip member's trailer records
 * (ISIZE, RFC 1952): no pieces to join, and one callback on the main thread, not one per 16 KiB.
 * A size the trailer cannot be trusted for (past 64 MiB: damage, or a member that large) falls
 * back to 1 MiB pieces; a wrong one only costs a join.
 */
function inflate(gz: Buffer): { chunkSize: number } {
  const size = gz.length >= 18 ? gz.readUInt32LE(gz.length - 4) : 0;
  return { chunkSize: size >= 64 && size <= 64 << 20 ? size : 1 << 20 };
}
const MAGIC = Buffer.from('RFE1');
const ZMAGIC = Buffer.from('RFZ1');
const SALT = 16;
const IV = 12;
const TAG = 16;
const HEADER = MAGIC.length + SALT + IV;

export interface RepoKey {
  readonly bytes: Buffer;
  readonly file: string;
}

/** Reads a key file: 32 bytes, as 64 hex digits or base64 text (`openssl rand -hex 32 > FILE`). */
export async function readKeyFile(file: string): Promise<RepoKey> {
  let text: string;
  try {
    text = (await fs.readFile(file, 'utf8')).trim();
  } catch (err) {
    throw new RfError('RF_REPO_KEY', `cannot read the key file ${file}`, {
      details: { keyFile: file, errno: errnoCode(err) },
      hint: 'check --repo-key-file; make a key with `openssl rand -hex 32 > FILE` (and keep a copy: without it the archive cannot be read)',
      cause: err,
    });
  }
  const bytes = /^[0-9a-fA-F]{64}$/.test(text)
    ? Buffer.from(text, 'hex')
    : Buffer.from(text, 'base64');
  if (bytes.length !== 32) {
    throw new RfError('RF_REPO_KEY', `the key file ${file} does not hold a 32-byte key`, {
      details: { keyFile: file },
      hint: 'write 64 hex digits into it: `openssl rand -hex 32 > FILE`',
    });
  }
  return { bytes, file };
}

const hasMark = (head: Buffer, mark: Buffer) =>
  head.length >= mark.length && head.subarray(0, mark.length).equals(mark);

export function isSealed(head: Buffer): boolean {
  return hasMark(head, MAGIC);
}

function objectKey(key: RepoKey, salt: Buffer, name: string): Buffer {
  return Buffer.from(hkdfSync('sha256', key.bytes, salt, `rf repo object ${name}`, 32));
}

/**
 * What says two uploads under one name are the same content: its sha256, or with a key an
 * HMAC of it (a bare hash of a known plaintext would tell which value an object holds).
 */
export function contentId(key: RepoKey | undefined, sha256: string): string {
  return key === undefined ? sha256 : createHmac('sha256', key.bytes).update(sha256).digest('hex');
}

export function seal(key: RepoKey | undefined, name: string, content: Buffer): Buffer {
  if (key === undefined) return Buffer.concat([ZMAGIC, gzipSync(content, { level: 1 })]);
  const salt = randomBytes(SALT);
  const iv = randomBytes(IV);
  const cipher = createCipheriv('aes-256-gcm', objectKey(key, salt, name), iv);
  const body = cipher.update(gzipSync(content, { level: 1 }));
  const tail = cipher.final();
  return Buffer.concat([MAGIC, salt, iv, body, tail, cipher.getAuthTag()]);
}

/** The refusal when an archive is read without its key, or the key does not open it. */
export function keyError(name: string, key: RepoKey | undefined, cause?: unknown): RfError {
  return key === undefined
    ? new RfError('RF_REPO_KEY', `the archive is encrypted (${name}): no key was given`, {
        details: { object: name },
        hint: 'pass --repo-key-file with the key the archive was written with',
      })
    : new RfError('RF_REPO_KEY', `the key in ${key.file} does not open the archive (${name})`, {
        details: { object: name, keyFile: key.file },
        hint: 'pass --repo-key-file with the key the archive was written with',
        cause,
      });
}

/**
 * The content of a stored object. A sealed one that does not authenticate is RF_REPO_KEY when
 * `keyCheck` (the first object a command reads, so a wrong key is told as such), else damage.
 * Decompression runs on libuv's thread pool: a restore replays one pack while the next ones
 * are decompressed beside it.
 */
export async function open(
  key: RepoKey | undefined,
  name: string,
  stored: Buffer,
  keyCheck: boolean,
): Promise<Buffer> {
  if (hasMark(stored, ZMAGIC)) {
    try {
      const gz = stored.subarray(ZMAGIC.length);
      return await gunzipAsync(gz, inflate(gz));
    } catch (err) {
      throw damaged(name, 'does not decompress', err);
    }
  }
  if (!isSealed(stored)) return stored;
  if (key === undefined) throw keyError(name, key);
  if (stored.length < HEADER + TAG) throw damaged(name, 'shorter than its header');
  const salt = stored.subarray(MAGIC.length, MAGIC.length + SALT);
  const iv = stored.subarray(MAGIC.length + SALT, HEADER);
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', objectKey(key, salt, name), iv);
    decipher.setAuthTag(stored.subarray(stored.length - TAG));
    plain = Buffer.concat([
      decipher.update(stored.subarray(HEADER, stored.length - TAG)),
      decipher.final(),
    ]);
  } catch (err) {
    throw keyCheck ? keyError(name, key, err) : damaged(name, 'does not authenticate', err);
  }
  try {
    return await gunzipAsync(plain, inflate(plain));
  } catch (err) {
    throw damaged(name, 'authenticates but does not decompress', err);
  }
}

export function damaged(name: string, why: string, cause?: unknown): RfError {
  return new RfError('RF_CHECKSUM', `the bucket object ${name} is damaged: ${why}`, {
    details: { object: name },
    hint: 'run `rf verify --repo …` to list every damaged object',
    cause,
  });
}

/** A file's bytes as they are stored: the file itself, or sealed as `seal` does, streamed. */
export async function* sealFile(key: RepoKey, name: string, file: string): AsyncGenerator<Buffer> {
  const salt = randomBytes(SALT);
  const iv = randomBytes(IV);
  const cipher = createCipheriv('aes-256-gcm', objectKey(key, salt, name), iv);
  yield Buffer.concat([MAGIC, salt, iv]);
  const gzip = createGzip({ level: 1 });
  const feeding = pipeline(createReadStream(file), gzip);
  for await (const chunk of gzip) yield cipher.update(chunk as Buffer);
  await feeding;
  yield Buffer.concat([cipher.final(), cipher.getAuthTag()]);
}

/** Turns the downloaded stored bytes in `stored` into the content in `out` (streamed). */
export async function openFile(
  key: RepoKey | undefined,
  name: string,
  stored: string,
  out: string,
): Promise<void> {
  const handle = await fs.open(stored, 'r');
  let head: Buffer;
  let size: number;
  try {
    size = (await handle.stat()).size;
    head = Buffer.alloc(Math.min(HEADER, size));
    await handle.read(head, 0, head.length, 0);
  } finally {
    await handle.close();
  }
  if (!isSealed(head)) {
    await fs.rename(stored, out);
    return;
  }
  if (key === undefined) throw keyError(name, key);
  if (size < HEADER + TAG) throw damaged(name, 'shorter than its header');
  const tag = Buffer.alloc(TAG);
  const h2 = await fs.open(stored, 'r');
  try {
    await h2.read(tag, 0, TAG, size - TAG);
  } finally {
    await h2.close();
  }
  const salt = head.subarray(MAGIC.length, MAGIC.length + SALT);
  const iv = head.subarray(MAGIC.length + SALT, HEADER);
  const decipher = createDecipheriv('aes-256-gcm', objectKey(key, salt, name), iv);
  decipher.setAuthTag(tag);
  try {
    await pipeline(
      createReadStream(stored, { start: HEADER, end: size - TAG - 1 }),
      decipher,
      createGunzip(),
      createWriteStream(out, { mode: 0o600 }),
    );
  } catch (err) {
    throw damaged(name, 'does not authenticate', err);
  } finally {
    await fs.rm(stored, { force: true });
  }
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
