import { RfError } from '../errors.js';

/** Where an archive lives in object storage: `s3://<bucket>/<prefix>`. */
export interface RepoLocation {
  bucket: string;
  /** No leading or trailing slash; '' for the bucket's root. */
  prefix: string;
  /** The URL as given, for messages (it never holds a secret: credentials come from the AWS chain). */
  url: string;
}

// S3's bucket naming rules (3 to 63 characters, lower-case letters, digits, dot and dash,
// starting and ending with a letter or digit); MinIO and Ceph RGW keep the same rules.
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
// A prefix is data, not a path: its parts are plain names, so `..` or an empty part cannot
// make two spellings of one place.
const PREFIX_PART = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

export function parseRepoUrl(url: string): RepoLocation {
  const bad = (why: string, hint: string) =>
    new RfError('RF_REPO_URL', `--repo ${JSON.stringify(url)} ${why}`, {
      details: { repo: url },
      hint,
    });
  const m = /^s3:\/\/([^/]*)(?:\/(.*))?$/.exec(url);
  if (m === null) {
    throw bad(
      'is not an s3:// URL',
      'write it as s3://<bucket>/<prefix>; the endpoint of a non-AWS store goes in --s3-endpoint',
    );
  }
  const bucket = m[1] ?? '';
  if (!BUCKET.test(bucket)) {
    throw bad(
      bucket === ''
        ? 'names no bucket'
        : `names the bucket ${JSON.stringify(bucket)}, which is not a valid bucket name`,
      'a bucket name is 3 to 63 lower-case letters, digits, dots and dashes: s3://<bucket>/<prefix>',
    );
  }
  const prefix = (m[2] ?? '').replace(/\/+$/, '');
  if (prefix !== '' && !prefix.split('/').every((part) => PREFIX_PART.test(part))) {
    throw bad(
      `has the prefix ${JSON.stringify(prefix)}, which is not a list of plain names`,
      'use letters, digits, dot, dash and underscore between the slashes (no empty part, no ..)',
    );
  }
  return { bucket, prefix, url };
}
