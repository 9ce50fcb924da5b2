/** A one-line progress bar on a TTY (stderr) while a backlog drains. Nothing when not a TTY. */
export class ProgressBar {
  private lastDraw = 0;
  private startedAt = Date.now();
  private shown = false;
  private doneAtStart = 0;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    /** Only draw for backlogs at least this big: a trickle needs no bar. */
    private readonly minBytes = 4 * 1024 * 1024,
  ) {}

  get enabled(): boolean {
    return this.stream.isTTY === true;
  }

  update(done: number, total: number): void {
    if (!this.enabled || total < this.minBytes) return;
    const now = Date.now();
    if (!this.shown && this.lastDraw === 0) {
      // The first report: measure the rate from here on.
      this.startedAt = now;
      this.doneAtStart = done;
    }
    if (now - this.lastDraw < 100 && done < total) return;
    this.lastDraw = now;
    this.shown = true;
    const width = 30;
    const frac = Math.min(1, done / total);
    const filled = Math.round(frac * width);
    const mb = (n: number): string => (n / 1024 / 1024).toFixed(1);
    const secs = Math.max(0.001, (now - this.startedAt) / 1000);
    const rate = secs < 0.2 ? '' : `${((done - this.doneAtStart) / 1024 / 1024 / secs).toFixed(1)} MiB/s`;
    this.stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ${mb(done)}/${mb(total)} MiB ${rate} `);
    if (done >= total) this.end();
  }

  end(): void {
    if (this.shown) this.stream.write('\n');
    this.shown = false;
    this.lastDraw = 0;
  }
}
