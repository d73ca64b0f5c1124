import { describe, expect, it } from 'vitest';
import { isRfError } from '../../src/errors.js';
import { parseRepoUrl } from '../../src/repo/url.js';

function refusal(url: string): string {
  try {
    parseRepoUrl(url);
  } catch (err) {
    if (isRfError(err, 'RF_REPO_URL')) return `${err.message} | ${err.hint}`;
    throw err;
  }
  throw new Error(`${url} was accepted`);
}

describe('--repo s3:// URLs', () => {
  it('reads the bucket and the prefix', () => {
    expect(parseRepoUrl('s3://backups/rf/cache-1')).toMatchObject({
      bucket: 'backups',
      prefix: 'rf/cache-1',
    });
    expect(parseRepoUrl('s3://backups/rf/')).toMatchObject({ bucket: 'backups', prefix: 'rf' });
    expect(parseRepoUrl('s3://backups')).toMatchObject({ bucket: 'backups', prefix: '' });
  });

  it('refuses what is not an s3:// URL, naming the form it takes', () => {
    expect(refusal('/var/backups')).toMatch(/is not an s3:\/\/ URL.*s3:\/\/<bucket>\/<prefix>/);
    expect(refusal('https://s3.amazonaws.com/b/p')).toMatch(/not an s3:\/\/ URL.*--s3-endpoint/);
  });

  it('refuses a missing or malformed bucket, and a prefix that is not plain names', () => {
    expect(refusal('s3:///prefix')).toMatch(/names no bucket/);
    expect(refusal('s3://Bad_Bucket/p')).toMatch(/not a valid bucket name/);
    expect(refusal('s3://bucket/a/../b')).toMatch(/not a list of plain names/);
    expect(refusal('s3://bucket/a//b')).toMatch(/not a list of plain names/);
  });
});
