import { type Logger, pino } from 'pino';

export type { Logger };

/** Keys whose values never reach a log line, wherever they sit in an object. */
const redactPaths = ['password', 'token', '*.password', '*.token', '*.*.password', '*.*.token'];

export interface LoggerOptions {
  level?: string;
  /** Pretty, human output; the default when stdout is a TTY. */
  pretty?: boolean;
  /** Where JSON lines go; stdout by default. */
  destination?: number | string;
}

/**
 * pino JSON lines on stdout, pretty on a TTY. Child loggers carry context (replid, offset,
 * timeline); the daemon flushes on exit because the destination is synchronous.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.RF_LOG_LEVEL ?? 'info';
  const pretty =
    options.pretty ?? (process.stdout.isTTY === true && options.destination === undefined);
  const base = {
    level,
    redact: { paths: redactPaths, censor: '[redacted]' },
    base: { pid: process.pid },
  };
  if (pretty) {
    return pino({
      ...base,
      transport: {
        target: 'pino-pretty',
        options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' },
      },
    });
  }
  return pino(base, pino.destination({ dest: options.destination ?? 1, sync: true }));
}

/** A logger that drops everything, for library code run without a daemon (tests, CLI reads). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
