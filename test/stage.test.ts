import { describe, expect, test } from 'vitest';
import { CaptureRecorder, EmitStage, emitAfterCommit } from 'metering-ledger';
import { vmStart } from './support/entries.js';

describe('emit after commit', () => {
  test('nothing is emitted while the update runs; everything after it commits', async () => {
    const rec = new CaptureRecorder();
    let seenInside = -1;
    const result = await emitAfterCommit(rec, async (stage) => {
      stage.add(vmStart('vm-1'));
      stage.add(vmStart('vm-2'));
      seenInside = rec.entries().length;
      return 'committed';
    });
    expect(result).toBe('committed');
    expect(seenInside).toBe(0);
    expect(rec.entries().map((e) => e.vm_id)).toEqual(['vm-1', 'vm-2']);
  });

  test('a rolled-back update publishes nothing and the error reaches the caller', async () => {
    const rec = new CaptureRecorder();
    await expect(
      emitAfterCommit(rec, (stage) => {
        stage.add(vmStart('vm-1'));
        throw new Error('disk full');
      }),
    ).rejects.toThrow('disk full');
    expect(rec.entries()).toEqual([]);
  });

  test('a retried closure emits once: begin() forgets the failed attempt', async () => {
    const rec = new CaptureRecorder();
    const stage = new EmitStage(rec);
    let attempts = 0;
    const update = (fn: () => void): void => {
      for (;;) {
        try {
          fn();
          return;
        } catch {
          if (++attempts > 3) throw new Error('gave up');
        }
      }
    };
    update(() => {
      stage.begin();
      stage.add(vmStart('vm-1'));
      if (attempts < 2) throw new Error('conflict, retry');
    });
    expect(stage.size).toBe(1);
    expect(stage.publish()).toHaveLength(1);
    expect(stage.publish()).toEqual([]); // publishing twice is a no-op
    expect(rec.entries()).toHaveLength(1);
    expect(() => stage.add(vmStart('late'))).toThrow(/after publish/);
  });

  test('discard drops everything', () => {
    const rec = new CaptureRecorder();
    const stage = new EmitStage(rec);
    stage.add(vmStart('vm-1'));
    stage.discard();
    expect(stage.publish()).toEqual([]);
    expect(rec.entries()).toEqual([]);
  });
});
