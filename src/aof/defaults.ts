/** Defaults of the AOF capture, kept apart so the CLI can show them without loading it. */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
export const DEFAULT_REWRITE_AT = '00:00';
export const DEFAULT_REWRITE_TIMEOUT = 30 * 60_000;
