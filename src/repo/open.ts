import type { RepoClient } from './client.js';
import { readKeyFile } from './crypt.js';
import { parseRepoUrl } from './url.js';

/** The --repo flags as the commands take them. */
export interface RepoFlags {
  repo?: string;
  s3Endpoint?: string;
  s3Region?: string;
  s3PathStyle?: boolean;
  repoKeyFile?: string;
}

/** The bucket client the flags describe, or undefined without --repo. */
export async function repoFromFlags(flags: RepoFlags): Promise<RepoClient | undefined> {
  if (flags.repo === undefined) return undefined;
  const location = parseRepoUrl(flags.repo);
  const key = flags.repoKeyFile === undefined ? undefined : await readKeyFile(flags.repoKeyFile);
  // The AWS SDK takes a few hundred milliseconds to load: only a command given --repo pays it.
  const { RepoClient } = await import('./client.js');
  return new RepoClient({
    location,
    ...(flags.s3Endpoint === undefined ? {} : { endpoint: flags.s3Endpoint }),
    ...(flags.s3Region === undefined ? {} : { region: flags.s3Region }),
    ...(flags.s3PathStyle === true ? { pathStyle: true } : {}),
    ...(key === undefined ? {} : { key }),
  });
}
