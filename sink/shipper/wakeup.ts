import * as path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from 'pino';
import { ACTIVE_LINK, isSegmentName } from '../../src/index.js';

/** A wait that ends early when poked (a file event) or stopped. */
export class Wakeup {
  private pending = false;
  private wake: ((byEvent: boolean) => void) | undefined;

  poke(): void {
    if (this.wake) {
      const w = this.wake;
      this.wake = undefined;
      w(true);
    } else {
      this.pending = true;
    }
  }

  /** Resolves true if poked (now or since the last wait), false on timeout. */
  wait(ms: number): Promise<boolean> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve(false);
      }, ms);
      this.wake = (byEvent) => {
        clearTimeout(timer);
        resolve(byEvent);
      };
    });
  }
}

/**
 * Watches the ledger directory with chokidar (native fs.watch, no polling) and pokes on any change
 * to a segment or the active link. Events can be missed (overflow, editors, network filesystems),
 * so the shipper also rescans on a timer; the watcher only makes it react faster.
 */
export function watchLedgerDir(dir: string, wakeup: Wakeup, log: Logger): FSWatcher {
  const root = path.resolve(dir);
  const watcher = watch(root, {
    ignoreInitial: true,
    depth: 0,
    usePolling: false,
    // Only segments and the link: our own state files (.shipper/) must not wake us in a loop.
    ignored: (p: string) => {
      const abs = path.resolve(p);
      if (abs === root) return false;
      const base = path.basename(abs);
      return path.dirname(abs) !== root || !(isSegmentName(base) || base === ACTIVE_LINK);
    },
  });
  watcher.on('all', () => wakeup.poke());
  watcher.on('error', (err) => log.warn({ err: err instanceof Error ? err.message : String(err) }, 'shipper: file watcher error; the periodic rescan still picks up changes'));
  return watcher;
}
