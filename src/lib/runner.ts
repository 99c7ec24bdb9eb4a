/**
 * SerialRunner: runs one async job at a time; triggers that arrive while it runs coalesce into
 * exactly one more run. The agent's reconciler and the engine use it so that two reconciles never
 * race (balena's exclusive runner).
 *
 * INVARIANTS: at most one `job` in flight; every `trigger()` is followed by a run that starts after
 * it; after `stop()` no new run starts and `idle()` resolves once the current one ends.
 */
export class SerialRunner {
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly job: () => Promise<void>,
    private readonly onError: (err: Error) => void,
  ) {}

  trigger(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        // Let every change that is already queued (a backlog of watch batches is applied in one
        // run of microtasks) arrive first, so a burst costs one run, not one run per change.
        await new Promise<void>((r) => setImmediate(r));
        this.again = false;
        try {
          await this.job();
        } catch (err) {
          this.onError(err as Error);
        }
      } while (this.again && !this.stopped);
      this.running = undefined;
    })();
  }

  /** Ask for another run after the current one (from inside the job). */
  rerun(): void {
    this.again = true;
  }

  /** Resolves when no run is in flight. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.idle();
  }
}
