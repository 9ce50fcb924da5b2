import * as fs from 'node:fs';
import * as path from 'node:path';
import lockfile from 'proper-lockfile';
import { emptyStore, type StoreData } from './records.js';

export interface JsonFileStoreOptions {
  /** A lock untouched for this long is considered abandoned by a dead process and broken. Default 10 s. */
  lockStaleMs?: number;
  /** How many times an update is attempted when it lost its lock before committing. Default 3. */
  maxAttempts?: number;
}

/** Which lock directory this is: a lock re-created by someone else differs (the inode alone may be reused). */
function lockIdentity(st: fs.Stats): string {
  return `${st.dev}:${st.ino}:${st.birthtimeMs}`;
}

/** Thrown when the store file exists but is not a store this code can read. Nothing is overwritten. */
export class StoreCorruptError extends Error {
  constructor(file: string, why: string) {
    super(`store ${file} is unreadable (${why}); fix or move it away, it was left untouched`);
    this.name = 'StoreCorruptError';
  }
}

/**
 * VM and snapshot records in one JSON file, changed only under a proper-lockfile lock, the way cocoon
 * keeps its records under a file lock: lock, read, mutate in a closure, write temp + fsync + rename,
 * unlock. Readers never see half a file; writers in different processes are serialized.
 *
 * The closure may run more than once: if the lock was lost while it ran (our process stalled past
 * the stale threshold and another process broke the lock), the attempt is thrown away and the
 * closure runs again on fresh data. Closures must therefore be free of side effects other than on
 * the data they are given; metering entries go through an EmitStage that the closure `begin()`s.
 */
export class JsonFileStore {
  readonly file: string;
  readonly lockPath: string;
  private readonly staleMs: number;
  private readonly maxAttempts: number;

  constructor(file: string, options: JsonFileStoreOptions = {}) {
    this.file = path.resolve(file);
    this.lockPath = `${this.file}.lock`;
    this.staleMs = Math.max(options.lockStaleMs ?? 10_000, 2_000);
    this.maxAttempts = options.maxAttempts ?? 3;
  }

  /** A consistent snapshot of the store, read without the lock (writes are atomic renames). */
  read(): StoreData {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyStore();
      throw err;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new StoreCorruptError(this.file, 'not valid JSON');
    }
    const data = value as Partial<StoreData> | null;
    if (!data || data.version !== 1 || typeof data.vms !== 'object' || typeof data.snapshots !== 'object') {
      throw new StoreCorruptError(this.file, 'not a version 1 store');
    }
    return data as StoreData;
  }

  /**
   * Runs `mutate` on the current data under the lock and commits what it left in `data`. If `mutate`
   * throws, nothing is written and the error propagates. Returns what `mutate` returned.
   * `attempt` counts from 1; a value above 1 means an earlier attempt was discarded.
   */
  async update<T>(mutate: (data: StoreData, attempt: number) => T): Promise<T> {
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    for (let attempt = 1; ; attempt++) {
      let compromised = false;
      const release = await lockfile.lock(this.file, {
        lockfilePath: this.lockPath,
        realpath: false,
        stale: this.staleMs,
        retries: { retries: 200, factor: 1.3, minTimeout: 5, maxTimeout: 100, randomize: true },
        // The default handler throws from a timer, killing the process; note it and retry instead.
        onCompromised: () => {
          compromised = true;
        },
      });
      const ours = lockIdentity(fs.statSync(this.lockPath));
      const holds = (): boolean => !compromised && this.stillHolds(ours);
      try {
        const data = this.read();
        const result = mutate(data, attempt);
        // Fencing: commit only if the lock we took is still there. Someone else's lock (or none) means
        // another process may have written since we read: this attempt's view is stale.
        if (holds()) {
          this.writeAtomically(data);
          return result;
        }
      } finally {
        // Release only a lock that is still ours: removing it otherwise would break another process's lock.
        if (holds()) await release().catch(() => undefined);
      }
      if (attempt >= this.maxAttempts) {
        throw new Error(`store ${this.file}: lost the lock ${attempt} times in a row; nothing was written`);
      }
    }
  }

  private stillHolds(ours: string): boolean {
    const st = fs.statSync(this.lockPath, { throwIfNoEntry: false });
    return st !== undefined && lockIdentity(st) === ours;
  }

  private writeAtomically(data: StoreData): void {
    const tmp = `${this.file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
    const fd = fs.openSync(tmp, 'wx', 0o600);
    try {
      fs.writeFileSync(fd, JSON.stringify(data, null, 2) + '\n');
      fs.fsyncSync(fd);
    } catch (err) {
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    fs.closeSync(fd);
    fs.renameSync(tmp, this.file);
    // Make the rename itself durable.
    const dirFd = fs.openSync(path.dirname(this.file), 'r');
    try {
      fs.fsyncSync(dirFd);
    } catch {
      // Some filesystems refuse fsync on a directory; the rename is still atomic.
    } finally {
      fs.closeSync(dirFd);
    }
  }
}
