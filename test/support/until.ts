export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export type Probe<T> = () => T | undefined | false | Promise<T | undefined | false>;

/** Polls `fn` every `intervalMs` until it returns something truthy; fails after `timeoutMs` naming `what`. */
export async function pollUntil<T>(what: string, fn: Probe<T>, timeoutMs: number, intervalMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}
