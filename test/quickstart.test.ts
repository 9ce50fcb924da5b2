import { expect, test } from 'vitest';
import { spawnTs, waitExit } from './support/spawn.js';
import { tempDir } from './support/tmp.js';

test('the README recorder example runs and prints the three entries it wrote', async () => {
  const t = tempDir('quickstart');
  try {
    const r = await waitExit(spawnTs('examples/recorder-quickstart.ts', [t.dir]));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').map((l) => l.split(' ').slice(1).join(' '))).toEqual(['vm.storage.start vm-1 1', 'vm.compute.start vm-1 2', 'vm.compute.stop vm-1 3']);
  } finally {
    t.cleanup();
  }
});
