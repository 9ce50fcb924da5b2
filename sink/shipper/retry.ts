import type { Logger } from 'pino';
import { PermanentDestinationError } from '../destinations/destination.js';

export interface RetryPolicy {
  /** First backoff step. Default 250 ms. */
  baseMs: number;
  /** Backoff never waits longer than this. Default 30 s. */
  capMs: number;
  /** Wait between attempts after an error retrying cannot fix (403, missing bucket). Default 60 s. */
  permanentMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { baseMs: 250, capMs: 30_000, permanentMs: 60_000 };

/** Thrown out of a retry loop when the shipper is asked to stop while waiting. */
export class StoppedError extends Error {
  constructor() {
    super('shipper stopping');
    this.name = 'StoppedError';
  }
}

/** Something that can be stopped: a sleep ends early when it is. */
export class StopSignal {
  private stopped = false;
  private readonly waiters = new Set<() => void>();

  get isStopped(): boolean {
    return this.stopped;
  }

  stop(): void {
    this.stopped = true;
    for (const w of this.waiters) w();
    this.waiters.clear();
  }

  /** Sleeps `ms`; resolves early (true) if stopped. */
  sleep(ms: number): Promise<boolean> {
    if (this.stopped) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve(this.stopped);
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }
}

export interface RetryHooks {
  onError?: (err: unknown, attempt: number, permanent: boolean) => void;
  onSuccessAfterErrors?: (attempts: number) => void;
}

/** Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^attempt)]. */
export function backoffDelay(policy: RetryPolicy, attempt: number, random = Math.random): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/**
 * Runs `fn` until it succeeds. Every error is retried: network errors, 408/429/5xx with backoff;
 * a PermanentDestinationError is logged with its hint and retried slowly, since an operator can
 * fix permissions or create the bucket while we wait, and giving up would only lose the position.
 * The attempt in flight always completes; only the waits between attempts end on stop.
 */
export async function retryForever<T>(what: string, fn: () => Promise<T>, policy: RetryPolicy, stop: StopSignal, log: Logger, hooks: RetryHooks = {}): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    if (stop.isStopped && attempt > 0) throw new StoppedError();
    try {
      const result = await fn();
      if (attempt > 0) hooks.onSuccessAfterErrors?.(attempt);
      return result;
    } catch (err) {
      const permanent = err instanceof PermanentDestinationError;
      hooks.onError?.(err, attempt, permanent);
      let wait: number;
      if (permanent) {
        wait = policy.permanentMs;
        log.error({ what, err: err.message, hint: err.hint, status: err.status, retryInMs: wait }, `shipper: ${err.message} — ${err.hint} (retrying every ${Math.round(wait / 1000)} s; nothing is lost meanwhile)`);
      } else {
        wait = backoffDelay(policy, attempt);
        const fields = { what, err: errorText(err), attempt: attempt + 1, retryInMs: wait };
        // The first failures of a blip are routine; a long outage is worth a warning each time.
        if (attempt < 3) log.info(fields, 'shipper: destination error; retrying');
        else log.warn(fields, 'shipper: destination still failing; retrying');
      }
      if (await stop.sleep(wait)) throw new StoppedError();
    }
  }
}

export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}
