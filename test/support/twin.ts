/**
 * Runs the engine (runRollup of metering-ledger/sink) beside the reference model (test/reference/)
 * on exactly what the reference run saw, and asserts they agree. What the reference run listed and
 * read is recorded and replayed to the engine, so injected faults (a 503 on a progress object) hit
 * both, and the engine keeps its own state database per reference state file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'vitest';
import type { Destination, ObjectInfo, PutIfAbsentResult, PutOptions, RollupOptions, runRollup as RunEngine } from 'metering-ledger/sink';
import type { RollupResult, runRollup as RunReference } from '../reference/run-rollup.js';
import { tempDir } from './tmp.js';

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** Remembers what the first engine saw; `replay()` shows the second engine exactly that. */
export class RecordingDestination implements Destination {
  readonly description: string;
  private readonly gets = new Map<string, Outcome<Buffer | undefined>>();
  private readonly lists = new Map<string, ObjectInfo[]>();

  constructor(private readonly inner: Destination) {
    this.description = inner.description;
  }

  putIfAbsent(name: string, body: Buffer, options?: PutOptions): Promise<PutIfAbsentResult> {
    return this.inner.putIfAbsent(name, body, options);
  }
  put(name: string, body: Buffer, options?: PutOptions): Promise<void> {
    return this.inner.put(name, body, options);
  }
  head(name: string): Promise<ObjectInfo | undefined> {
    return this.inner.head(name);
  }
  delete(name: string): Promise<void> {
    return this.inner.delete(name);
  }
  async get(name: string): Promise<Buffer | undefined> {
    try {
      const value = await this.inner.get(name);
      if (!this.gets.has(name)) this.gets.set(name, { ok: true, value });
      return value;
    } catch (error) {
      if (!this.gets.has(name)) this.gets.set(name, { ok: false, error });
      throw error;
    }
  }
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const seen: ObjectInfo[] = [];
    for await (const info of this.inner.list(prefix)) {
      seen.push(info);
      yield info;
    }
    this.lists.set(prefix, seen);
  }

  replay(): Destination {
    const self = this;
    return {
      description: this.description,
      putIfAbsent: (n, b, o) => self.inner.putIfAbsent(n, b, o),
      put: (n, b, o) => self.inner.put(n, b, o),
      head: (n) => self.inner.head(n),
      delete: (n) => self.inner.delete(n),
      async get(name) {
        const o = self.gets.get(name);
        if (!o) return self.inner.get(name);
        if (!o.ok) throw o.error;
        return o.value;
      },
      async *list(prefix) {
        const l = self.lists.get(prefix);
        if (!l) {
          yield* self.inner.list(prefix);
          return;
        }
        yield* l;
      },
    };
  }
}

/** What both engines must agree on: every output row and the whole report. */
export function comparable(r: RollupResult): unknown {
  const { report } = r;
  return {
    intervals: r.intervals,
    hourly: r.hourly,
    revisions: r.revisions,
    report: { ...report, objects: { ...report.objects, bad: [...report.objects.bad].sort((a, b) => (a.object < b.object ? -1 : 1)) } },
  };
}

/** A runRollup that also runs the twin and asserts agreement (for vi.mock of 'metering-ledger/sink'). */
export function twinRollup(runRollup: typeof RunReference, runEngine: typeof RunEngine): { run: typeof RunReference; comparisons: () => number; cleanup: () => void } {
  const twinRoot = tempDir('twin-state');
  const twinStates = new Map<string, string>();
  let comparisons = 0;
  const run = async (options: RollupOptions): Promise<RollupResult> => {
    const now = options.now ?? Date.now();
    const sink = await import('metering-ledger/sink');
    const opened = options.destination ?? (await sink.openDestination(options.source));
    // A missing source directory is the consumer's own check (on its own LocalDirDestination).
    if (opened.destination instanceof sink.LocalDirDestination && !fs.existsSync(opened.destination.root)) return runRollup({ ...options, now });
    const recording = new RecordingDestination(opened.destination);
    const stateFile = options.state ?? (options.out ? path.join(options.out, 'state.json') : undefined);
    const fresh = stateFile !== undefined && !fs.existsSync(stateFile);
    const ts = await runRollup({ ...options, now, destination: { destination: recording, prefix: opened.prefix } });
    let twinState: string | undefined;
    if (stateFile) {
      const key = path.resolve(stateFile);
      twinState = twinStates.get(key);
      // A state the twin did not see grow (written by hand, or migrated from an older version): its
      // history is the TypeScript consumer's alone, so there is nothing to compare.
      if (twinState === undefined && !fresh) return ts;
      if (twinState === undefined || fresh) {
        twinState = path.join(twinRoot.dir, `state-${twinStates.size + 1}-${comparisons}.duckdb`);
        twinStates.set(key, twinState);
      }
    }
    const { out: _out, state: _state, onProgress: _p, logger: _l, ...rest } = options;
    // Every other comparison with small fold buckets (two or three resources each: a resource weighs
    // 100 + its events), so bucket boundaries are crossed; the others as configured by default.
    const engine = await runEngine({ ...rest, now, collectRows: true, ...(comparisons % 2 === 0 ? { bucketEvents: 250 } : {}), ...(twinState ? { state: twinState } : {}), destination: { destination: recording.replay(), prefix: opened.prefix } });
    const sql: RollupResult = { ...engine.rows!, report: engine.report, run: engine.run };
    expect(comparable(sql), `engine (DuckDB) vs reference model (run at ${new Date(now).toISOString()})`).toEqual(comparable(ts));
    comparisons++;
    return ts;
  };
  return { run, comparisons: () => comparisons, cleanup: twinRoot.cleanup };
}
