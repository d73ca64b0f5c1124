import { errnoCode, RfError } from '../errors.js';
import type { RepoLocation } from './url.js';

const AUTH = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'InvalidToken',
  'ExpiredToken',
  'CredentialsProviderError',
]);
const NETWORK = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);

interface SdkError {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/**
 * A failed bucket request as the RF_REPO_* an operator can act on: the bucket is not there,
 * the credentials are refused, or the endpoint does not answer (or answers 5xx). What was being
 * done is in the message; the cause keeps the SDK's own error.
 */
export function repoError(err: unknown, location: RepoLocation, doing: string): RfError {
  if (err instanceof RfError) return err;
  const e = (err ?? {}) as SdkError;
  const status = e.$metadata?.httpStatusCode;
  const name = e.name ?? '';
  const details = {
    repo: location.url,
    bucket: location.bucket,
    status,
    error: name || errnoCode(err),
  };
  if (name === 'NoSuchBucket' || (name === 'NotFound' && doing === 'open the bucket')) {
    return new RfError('RF_REPO_BUCKET', `the bucket ${location.bucket} does not exist`, {
      details,
      hint: 'check the bucket name in --repo and --s3-endpoint; create the bucket first (rf does not create buckets)',
      cause: err,
    });
  }
  if (AUTH.has(name) || status === 403 || status === 401) {
    return new RfError(
      'RF_REPO_AUTH',
      `the bucket ${location.bucket} refused the credentials (${name || status}) while trying to ${doing}`,
      {
        details,
        hint: 'check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), and that they may read and write the bucket',
        cause: err,
      },
    );
  }
  const code = deepErrno(err);
  if (
    (code !== undefined && NETWORK.has(code)) ||
    name === 'TimeoutError' ||
    name === 'AbortError' ||
    name === 'RequestTimeout' ||
    (status !== undefined && status >= 500)
  ) {
    return new RfError(
      'RF_REPO_UNREACHABLE',
      `the object store does not answer (${code ?? (name || status)}) while trying to ${doing}`,
      {
        details: { ...details, errno: code },
        hint: 'check --s3-endpoint (and that the store is up and reachable from here); what is not uploaded stays in the local store',
        cause: err,
      },
    );
  }
  return new RfError(
    'RF_REPO_UNREACHABLE',
    `the object store refused to ${doing}: ${name || e.message || String(err)}`,
    {
      details,
      hint: 'check --repo, --s3-endpoint and --s3-region',
      cause: err,
    },
  );
}

function deepErrno(err: unknown): string | undefined {
  for (let e: unknown = err, i = 0; e !== undefined && e !== null && i < 5; i++) {
    const code = errnoCode(e);
    if (code !== undefined) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}
