/**
 * The one retry policy of the shipper, as a Destination wrapper: every call is retried until it
 * succeeds, the shipper is stopped, or (for `--once`) the policy gives up. Whether an error is
 * worth a fast retry is decided here, once: a PermanentDestinationError (403, missing bucket, a
 * destination path that is a file) waits `permanentMs` between attempts, anything else backs off
 * exponentially with full jitter. The wrapped destination's own client retries are turned off
 * (`withoutClientRetries`), so a failure is never retried silently inside ours.
 */
import type { Logger } from 'pino';
import { PermanentDestinationError, type Destination, type ObjectInfo, type PutIfAbsentResult, type PutOptions } from './destination.js';

export interface RetryPolicy {
  /** First backoff step. Default 250 ms. */
  baseMs: number;
  /** Backoff never waits longer than this. Default 30 s. */
  capMs: number;
  /** Wait between attempts after an error retrying cannot fix (403, missing bucket). Default 60 s. */
  permanentMs: number;
  /**
   * Give up once the destination has been failing this long without a single success (undefined:
   * never, the daemon's way: the ledger is the buffer). `--once` sets it from --max-retry-time.
   */
  giveUpAfterMs?: number;
  /** Give up at the first PermanentDestinationError instead of waiting for an operator (`--once`). */
  giveUpOnPermanent?: boolean;
}

export const DEFAULT_RETRY: RetryPolicy = { baseMs: 250, capMs: 30_000, permanentMs: 60_000 };

/** Thrown out of a retry loop when the shipper is asked to stop while waiting. */
export class StoppedError extends Error {
  constructor() {
    super('shipper stopping');
    this.name = 'StoppedError';
  }
}

/** The policy gave up: `cause` is the last error, `failingForMs` how long calls had been failing. */
export class GaveUpError extends Error {
  constructor(
    readonly what: string,
    readonly lastError: unknown,
    readonly failingForMs: number,
    readonly permanent: boolean,
  ) {
    super(
      permanent
        ? `${what}: ${errorText(lastError)}${lastError instanceof PermanentDestinationError ? ` (${lastError.hint})` : ''}`
        : `${what}: still failing after ${Math.round(failingForMs / 1000)} s: ${errorText(lastError)}`,
    );
    this.name = 'GaveUpError';
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
  /** Every failed attempt (counted and shown as the last error by the shipper). */
  onError?: (err: unknown, permanent: boolean) => void;
}

/** Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^attempt)]. */
export function backoffDelay(policy: RetryPolicy, attempt: number, random = Math.random): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

/**
 * A Destination whose every call is retried by one policy. The attempt in flight always completes;
 * only the waits between attempts end on stop (StoppedError). The give-up clock runs from the first
 * failure since the last success of any call, so a dead destination costs `giveUpAfterMs` once,
 * not once per call.
 */
export class RetryingDestination implements Destination {
  readonly description: string;
  readonly inner: Destination;
  private failingSince: number | undefined;

  constructor(
    inner: Destination,
    private readonly policy: RetryPolicy,
    private readonly stop: StopSignal,
    private readonly log: Logger,
    private readonly hooks: RetryHooks = {},
  ) {
    this.inner = inner.withoutClientRetries?.() ?? inner;
    this.description = inner.description;
  }

  /** Runs `fn` under the policy. */
  async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      if (this.stop.isStopped && attempt > 0) throw new StoppedError();
      try {
        const result = await fn();
        this.failingSince = undefined;
        return result;
      } catch (err) {
        const permanent = err instanceof PermanentDestinationError;
        this.hooks.onError?.(err, permanent);
        const now = Date.now();
        this.failingSince ??= now;
        const failingFor = now - this.failingSince;
        if (permanent && this.policy.giveUpOnPermanent) throw new GaveUpError(what, err, failingFor, true);
        if (this.policy.giveUpAfterMs !== undefined && failingFor >= this.policy.giveUpAfterMs) throw new GaveUpError(what, err, failingFor, false);
        let wait: number;
        if (permanent) {
          wait = this.policy.permanentMs;
          this.log.error({ what, err: err.message, hint: err.hint, status: err.status, retryInMs: wait }, `shipper: ${err.message} — ${err.hint} (retrying every ${Math.round(wait / 1000)} s; nothing is lost meanwhile)`);
        } else {
          wait = backoffDelay(this.policy, attempt);
          const fields = { what, err: errorText(err), attempt: attempt + 1, retryInMs: wait };
          // The first failures of a blip are routine; a long outage is worth a warning each time.
          if (attempt < 3) this.log.info(fields, 'shipper: destination error; retrying');
          else this.log.warn(fields, 'shipper: destination still failing; retrying');
        }
        if (this.policy.giveUpAfterMs !== undefined) wait = Math.max(0, Math.min(wait, this.policy.giveUpAfterMs - failingFor));
        if (await this.stop.sleep(wait)) throw new StoppedError();
      }
    }
  }

  putIfAbsent(name: string, body: Buffer, options?: PutOptions): Promise<PutIfAbsentResult> {
    return this.call(`put ${name}`, () => this.inner.putIfAbsent(name, body, options));
  }

  put(name: string, body: Buffer, options?: PutOptions): Promise<void> {
    return this.call(`put ${name}`, () => this.inner.put(name, body, options));
  }

  /** One attempt, no retry: for reports that must not hold up a stop (the final progress object). */
  putOnce(name: string, body: Buffer, options?: PutOptions): Promise<void> {
    return this.inner.put(name, body, options).catch((err: unknown) => {
      this.hooks.onError?.(err, err instanceof PermanentDestinationError);
      throw err;
    });
  }

  get(name: string): Promise<Buffer | undefined> {
    return this.call(`get ${name}`, () => this.inner.get(name));
  }

  head(name: string): Promise<ObjectInfo | undefined> {
    return this.call(`head ${name}`, () => this.inner.head(name));
  }

  /** A listing retried as a whole: a page failing halfway restarts the listing. */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const all = await this.call(`list ${prefix}`, async () => {
      const out: ObjectInfo[] = [];
      for await (const info of this.inner.list(prefix)) out.push(info);
      return out;
    });
    yield* all;
  }

  delete(name: string): Promise<void> {
    return this.call(`delete ${name}`, () => this.inner.delete(name));
  }
}
