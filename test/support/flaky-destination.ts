import type { Destination, ObjectInfo, PutIfAbsentResult, PutOptions } from 'metering-ledger/sink';

export type FlakyMode =
  /** Throw before doing anything (a refused connection, a 503). */
  | 'fail'
  /** Do the call, then throw as if the response was lost (the object is stored!). */
  | 'store-then-throw';

type Op = 'putIfAbsent' | 'put' | 'get' | 'head' | 'list' | 'delete';

/**
 * Wraps a real destination and injects faults: the next N calls of some operations fail, every call
 * is delayed, or a call stores and then throws to simulate a response lost on the way back. Counts
 * calls so tests can check that retries happened and how many objects each attempt created.
 */
export class FlakyDestination implements Destination {
  readonly description: string;
  private failures: { ops: Set<Op> | undefined; remaining: number; mode: FlakyMode; error: () => Error }[] = [];
  /** While true, every call fails (an outage of unknown length). */
  down = false;
  delayMs = 0;
  readonly calls: Record<Op, number> = { putIfAbsent: 0, put: 0, get: 0, head: 0, list: 0, delete: 0 };
  readonly failed: Record<Op, number> = { putIfAbsent: 0, put: 0, get: 0, head: 0, list: 0, delete: 0 };
  /** Names passed to putIfAbsent that came back 'created' (a duplicate upload would show here twice). */
  readonly created: string[] = [];

  constructor(readonly inner: Destination) {
    this.description = `flaky+${inner.description}`;
  }

  /** The next `n` calls of `ops` (all ops if omitted) fail in `mode`. */
  failNext(n: number, options: { ops?: Op[]; mode?: FlakyMode; error?: () => Error } = {}): void {
    this.failures.push({
      ops: options.ops ? new Set(options.ops) : undefined,
      remaining: n,
      mode: options.mode ?? 'fail',
      error: options.error ?? (() => Object.assign(new Error('injected: connection reset'), { code: 'ECONNRESET' })),
    });
  }

  private async enter(op: Op): Promise<FlakyMode | undefined> {
    this.calls[op]++;
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.down) {
      this.failed[op]++;
      throw Object.assign(new Error('injected outage: 503 Service Unavailable'), { code: 'EOUTAGE' });
    }
    const f = this.failures.find((x) => x.remaining > 0 && (!x.ops || x.ops.has(op)));
    if (!f) return undefined;
    f.remaining--;
    this.failed[op]++;
    if (f.mode === 'fail') throw f.error();
    return f.mode;
  }

  private lost(): Error {
    return Object.assign(new Error('injected: response lost after the object was stored'), { code: 'ECONNRESET' });
  }

  async putIfAbsent(name: string, body: Buffer, options?: PutOptions): Promise<PutIfAbsentResult> {
    const mode = await this.enter('putIfAbsent');
    const result = await this.inner.putIfAbsent(name, body, options);
    if (result === 'created') this.created.push(name);
    if (mode === 'store-then-throw') throw this.lost();
    return result;
  }

  async put(name: string, body: Buffer, options?: PutOptions): Promise<void> {
    const mode = await this.enter('put');
    await this.inner.put(name, body, options);
    if (mode === 'store-then-throw') throw this.lost();
  }

  async get(name: string): Promise<Buffer | undefined> {
    await this.enter('get');
    return this.inner.get(name);
  }

  async head(name: string): Promise<ObjectInfo | undefined> {
    await this.enter('head');
    return this.inner.head(name);
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    await this.enter('list');
    yield* this.inner.list(prefix);
  }

  async delete(name: string): Promise<void> {
    await this.enter('delete');
    await this.inner.delete(name);
  }
}
