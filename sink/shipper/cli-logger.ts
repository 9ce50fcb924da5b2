import { pino, type Logger } from 'pino';

/**
 * The CLI's logger: JSON lines to stderr (for journald, containers, log shippers); human-readable
 * through pino-pretty when stderr is a terminal and pino-pretty is installed (a dev dependency).
 */
export async function cliLogger(name: string): Promise<Logger> {
  const level = process.env.METERING_LOG_LEVEL ?? 'info';
  if (process.stderr.isTTY) {
    try {
      const { build } = (await import('pino-pretty')) as unknown as { build: (o: Record<string, unknown>) => NodeJS.WritableStream };
      return pino({ name, level }, build({ destination: 2, sync: true, colorize: true, translateTime: 'SYS:HH:MM:ss.l' }));
    } catch {
      // Not installed: plain JSON is fine.
    }
  }
  return pino({ name, level }, pino.destination({ fd: 2, sync: true }));
}
