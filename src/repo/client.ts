import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type * as Sdk from '@aws-sdk/client-s3';
import type * as Storage from '@aws-sdk/lib-storage';
import { RfError } from '../errors.js';
import { contentId, open, openFile, type RepoKey, seal, sealFile, sha256 } from './crypt.js';
import { repoError } from './errors.js';
import type { RepoLocation } from './url.js';

export interface RepoOptions {
  location: RepoLocation;
  endpoint?: string;
  region?: string;
  pathStyle?: boolean;
  key?: RepoKey;
  /** How long one request may take before it counts as failed (default 30 s). */
  requestTimeoutMs?: number;
}

/** What `put` did: the object was written, or the bucket held that content under that name already. */
export type PutResult = { kind: 'written' | 'same'; storedBytes: number; storedSha256: string };

export interface StoredObject {
  name: string;
  size: number;
}

// The SDK is CommonJS: required, it loads without the ESM loader's pass over each of its
// modules, which costs a command reading the bucket a large share of its start-up.
const require = createRequire(import.meta.url);
const {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} = require('@aws-sdk/client-s3') as typeof Sdk;

// Object metadata (x-amz-meta-*) carrying what makes a put idempotent.
const META_CONTENT = 'rf-content';
// The sha256 of the stored bytes, where it is known before they are sent.
const META_STORED = 'rf-stored';

/**
 * The bucket as rf uses it: immutable objects under the archive's prefix, each put at most once
 * with one content. Names passed in and out are relative to the prefix.
 */
export class RepoClient {
  private readonly s3: Sdk.S3Client;
  readonly location: RepoLocation;
  readonly key: RepoKey | undefined;

  constructor(options: RepoOptions) {
    this.location = options.location;
    this.key = options.key;
    // The SDK warns on every run under Node 20 about releases that will need Node 22; the lock
    // file keeps one that runs on Node 20, so the warning would only be noise on stderr.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.s3 = new S3Client({
      ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
      region: options.region ?? process.env.AWS_REGION ?? 'us-east-1',
      forcePathStyle: options.pathStyle ?? false,
      // SDK releases from 3.729 on send CRC32 checksums and aws-chunked bodies by default, which
      // several S3-compatible servers refuse (REDIS-FACTS.md, "Object storage").
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 2,
      requestHandler: {
        connectionTimeout: 5_000,
        requestTimeout: options.requestTimeoutMs ?? 30_000,
        throwOnRequestTimeout: true,
      },
    });
  }

  private fullName(name: string): string {
    return this.location.prefix === '' ? name : `${this.location.prefix}/${name}`;
  }

  /** Checks the bucket answers to these credentials: a clear RF_REPO_* before any work starts. */
  async probe(timeoutMs?: number): Promise<void> {
    try {
      await this.s3.send(
        new HeadBucketCommand({ Bucket: this.location.bucket }),
        timeoutMs === undefined ? {} : { abortSignal: AbortSignal.timeout(timeoutMs) },
      );
    } catch (err) {
      throw repoError(err, this.location, 'open the bucket');
    }
  }

  /** The content id recorded with an object, or undefined when there is none by that name. */
  async head(
    name: string,
  ): Promise<
    { content: string | undefined; stored: string | undefined; size: number } | undefined
  > {
    try {
      const out = await this.s3.send(
        new HeadObjectCommand({ Bucket: this.location.bucket, Key: this.fullName(name) }),
      );
      return {
        content: out.Metadata?.[META_CONTENT],
        stored: out.Metadata?.[META_STORED],
        size: out.ContentLength ?? 0,
      };
    } catch (err) {
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) {
        return undefined;
      }
      throw repoError(err, this.location, `read ${name}`);
    }
  }

  /**
   * Puts `content` under `name` once. The same content again is a no-op; other content under
   * a name already taken is RF_REPO_CONFLICT, as pgBackRest and WAL-G refuse it: an archive
   * object never changes once written.
   */
  async put(name: string, content: Buffer): Promise<PutResult> {
    const id = contentId(this.key, sha256(content));
    const existing = await this.existing(name, id);
    if (existing !== undefined) return existing;
    const stored = seal(this.key, name, content);
    const storedSha256 = sha256(stored);
    try {
      await this.s3.send(
        new PutObjectCommand({
          Bucket: this.location.bucket,
          Key: this.fullName(name),
          Body: stored,
          ContentLength: stored.length,
          Metadata: { [META_CONTENT]: id, [META_STORED]: storedSha256 },
        }),
      );
    } catch (err) {
      throw repoError(err, this.location, `write ${name}`);
    }
    return { kind: 'written', storedBytes: stored.length, storedSha256 };
  }

  /** `put` for a file, streamed (a base can be many gigabytes): a multipart upload. */
  async putFile(name: string, file: string, fileSha256: string): Promise<PutResult> {
    const id = contentId(this.key, fileSha256);
    const existing = await this.existing(name, id);
    if (existing !== undefined) return existing;
    const hash = createHash('sha256');
    let storedBytes = 0;
    const source =
      this.key === undefined
        ? createReadStream(file)
        : Readable.from(sealFile(this.key, name, file));
    const body = source.pipe(
      new Transform({
        transform(chunk: Buffer, _enc, done) {
          hash.update(chunk);
          storedBytes += chunk.length;
          done(null, chunk);
        },
      }),
    );
    source.on('error', (err: Error) => body.destroy(err));
    try {
      // Only an upload of a file needs it: a command that reads the bucket does not load it.
      const { Upload } = require('@aws-sdk/lib-storage') as typeof Storage;
      await new Upload({
        client: this.s3,
        // Parts of 8 MB, two at a time: what an upload holds in memory, whatever the file's size.
        partSize: 8 * 1024 * 1024,
        queueSize: 2,
        params: {
          Bucket: this.location.bucket,
          Key: this.fullName(name),
          Body: body,
          Metadata: {
            [META_CONTENT]: id,
            ...(this.key === undefined ? { [META_STORED]: fileSha256 } : {}),
          },
        },
      }).done();
    } catch (err) {
      throw repoError(err, this.location, `write ${name}`);
    }
    return { kind: 'written', storedBytes, storedSha256: hash.digest('hex') };
  }

  private async existing(name: string, id: string): Promise<PutResult | undefined> {
    const head = await this.head(name);
    if (head === undefined) return undefined;
    if (head.content !== id) {
      throw new RfError(
        'RF_REPO_CONFLICT',
        `the bucket already holds other content under ${this.fullName(name)}`,
        {
          details: { repo: this.location.url, object: name },
          hint: 'two archives are writing to one --repo prefix: give each its own prefix (s3://bucket/<prefix>)',
        },
      );
    }
    return {
      kind: 'same',
      storedBytes: head.size,
      storedSha256: head.stored ?? (await this.storedSha256(name)),
    };
  }

  /** The sha256 of an object's stored bytes, read through (streamed). */
  async storedSha256(name: string): Promise<string> {
    const hash = createHash('sha256');
    try {
      const res = await this.s3.send(
        new GetObjectCommand({ Bucket: this.location.bucket, Key: this.fullName(name) }),
      );
      for await (const chunk of res.Body as Readable) hash.update(chunk as Buffer);
    } catch (err) {
      throw repoError(err, this.location, `read ${name}`);
    }
    return hash.digest('hex');
  }

  /** The stored bytes of an object, or undefined when it is not there. */
  async getStored(name: string): Promise<Buffer | undefined> {
    try {
      const out = await this.s3.send(
        new GetObjectCommand({ Bucket: this.location.bucket, Key: this.fullName(name) }),
      );
      const bytes = await out.Body!.transformToByteArray();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchKey') return undefined;
      throw repoError(err, this.location, `read ${name}`);
    }
  }

  /** An object's content (opened with the key), or undefined when it is not there. */
  async get(name: string, keyCheck = false): Promise<Buffer | undefined> {
    const stored = await this.getStored(name);
    return stored === undefined ? undefined : await open(this.key, name, stored, keyCheck);
  }

  /**
   * Streams an object's stored bytes to `tmp` (hashing them), then its content to `out`. The
   * stored sha256 is returned, for a caller to check against the one recorded at upload.
   */
  async download(name: string, tmp: string, out: string): Promise<string> {
    const hash = createHash('sha256');
    try {
      const res = await this.s3.send(
        new GetObjectCommand({ Bucket: this.location.bucket, Key: this.fullName(name) }),
      );
      await pipeline(
        res.Body as Readable,
        new Transform({
          transform(chunk: Buffer, _enc, done) {
            hash.update(chunk);
            done(null, chunk);
          },
        }),
        createWriteStream(tmp, { mode: 0o600 }),
      );
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw repoError(err, this.location, `read ${name}`);
    }
    const storedSha = hash.digest('hex');
    await openFile(this.key, name, tmp, out);
    return storedSha;
  }

  /** Every object under `under` (relative to the prefix), in name order. */
  async *list(under = ''): AsyncIterable<StoredObject> {
    const base = this.fullName('');
    const prefix = this.fullName(under);
    let token: string | undefined;
    do {
      let page: Sdk.ListObjectsV2CommandOutput;
      try {
        page = await this.s3.send(
          new ListObjectsV2Command({
            Bucket: this.location.bucket,
            Prefix: prefix,
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        );
      } catch (err) {
        throw repoError(err, this.location, 'list the bucket');
      }
      for (const o of page.Contents ?? []) {
        if (o.Key !== undefined) yield { name: o.Key.slice(base.length), size: o.Size ?? 0 };
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async delete(names: readonly string[]): Promise<void> {
    for (let i = 0; i < names.length; i += 1000) {
      const batch = names.slice(i, i + 1000);
      try {
        await this.s3.send(
          new DeleteObjectsCommand({
            Bucket: this.location.bucket,
            Delete: { Objects: batch.map((n) => ({ Key: this.fullName(n) })), Quiet: true },
          }),
        );
      } catch (err) {
        throw repoError(err, this.location, 'delete objects');
      }
    }
  }

  close(): void {
    this.s3.destroy();
  }
}
