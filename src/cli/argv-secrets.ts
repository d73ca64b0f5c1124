/** Secrets on rf's command line, which main.ts hides behind the process title at once. */

/** Credentials in a URL's userinfo: `redis://user:password@host`, `redis://:password@host`. */
const URL_PASSWORD = /^[a-z][a-z0-9+.-]*:\/\/[^/@\s]*:[^/@\s]+@/i;

/**
 * The flags on this command line that carry a secret: each is a warning to the operator (as
 * redis-cli gives for -a), since another user may have read it before the title hid it.
 */
export function commandLineSecrets(argv: readonly string[]): string[] {
  const found: string[] = [];
  for (const [i, arg] of argv.entries()) {
    const [flag, inline] = arg.startsWith('--') ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    if (flag === '--token') found.push('--token');
    const value = inline ?? (flag?.startsWith('--') ? argv[i + 1] : undefined);
    if (flag?.startsWith('--') && value !== undefined && URL_PASSWORD.test(value)) found.push(flag);
  }
  return [...new Set(found)];
}
