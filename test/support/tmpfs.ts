import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * Mounts a small tmpfs for disk-full tests. Needs root (CI runs as root); returns undefined with
 * the reason when it cannot, so the test can skip with a clear message instead of passing silently.
 */
export function mountTmpfs(sizeBytes: number): { dir: string; unmount: () => void } | { skip: string } {
  if (process.getuid?.() !== 0) return { skip: 'disk-full test needs root to mount a tmpfs; skipped' };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    return { skip: `cannot mount a tmpfs here (${(err as Error).message.split('\n')[0]}); skipped` };
  }
  return {
    dir,
    unmount: () => {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Fills a filesystem until fewer than `leaveBytes` are free; returns the ballast file. */
export function fillDisk(dir: string, leaveBytes: number): string {
  const ballast = path.join(dir, 'ballast');
  const { bavail, bsize } = fs.statfsSync(dir);
  const free = bavail * bsize;
  fs.writeFileSync(ballast, Buffer.alloc(Math.max(0, free - leaveBytes)));
  return ballast;
}
