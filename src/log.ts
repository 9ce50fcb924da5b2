import { pino, type Logger } from 'pino';

export type { Logger };

let defaultLogger: Logger | undefined;

/**
 * The library's default logger: JSON to stderr (never stdout, which belongs to the host program),
 * synchronous so a warning written just before a crash is not lost. Level from METERING_LOG_LEVEL.
 */
export function defaultMeteringLogger(): Logger {
  defaultLogger ??= pino(
    { name: 'metering', level: process.env.METERING_LOG_LEVEL ?? 'info' },
    pino.destination({ fd: 2, sync: true }),
  );
  return defaultLogger;
}

/**
 * Logs one problem at most once per window, with how many were suppressed since. A full disk
 * makes every emit fail; without this the log would grow as fast as the ledger used to.
 */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly windowMs = 10_000,
  ) {}

  warn(key: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    const seen = this.last.get(key);
    if (seen && now - seen.at < this.windowMs) {
      seen.suppressed++;
      return;
    }
    const suppressed = seen?.suppressed ?? 0;
    this.last.set(key, { at: now, suppressed: 0 });
    this.logger.warn(suppressed > 0 ? { ...fields, suppressed } : fields, message);
  }
}
