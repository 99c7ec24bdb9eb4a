/**
 * sd_notify without native code: runs `systemd-notify` (fixed argv, no shell) when NOTIFY_SOCKET is
 * set, else does nothing (nomad's sdnotify pattern). Needs NotifyAccess=all in the unit, because
 * the sender is a child process; `--pid` names us as the main process.
 */
import { execFile } from 'node:child_process';

export class SdNotify {
  private watchdog: NodeJS.Timeout | undefined;

  constructor(private readonly env = process.env) {}

  get enabled(): boolean {
    return Boolean(this.env.NOTIFY_SOCKET);
  }

  send(...assignments: string[]): Promise<void> {
    if (!this.enabled) return Promise.resolve();
    return new Promise((resolve) => {
      execFile(
        'systemd-notify',
        [`--pid=${process.pid}`, ...assignments],
        { env: this.env, timeout: 5000 },
        () => resolve(),
      );
    });
  }

  ready(status?: string): Promise<void> {
    return this.send('READY=1', ...(status ? [`STATUS=${status}`] : []));
  }

  stopping(): Promise<void> {
    return this.send('STOPPING=1');
  }

  status(text: string): Promise<void> {
    return this.send(`STATUS=${text}`);
  }

  /**
   * Ping the watchdog every WATCHDOG_USEC/2 while `alive()` says the reconcile loop is healthy; a
   * stuck loop stops the pings and systemd restarts us.
   */
  startWatchdog(alive: () => boolean): void {
    const usec = Number(this.env.WATCHDOG_USEC ?? 0);
    if (!this.enabled || !usec) return;
    this.watchdog = setInterval(() => {
      if (alive()) void this.send('WATCHDOG=1');
    }, usec / 2000);
    this.watchdog.unref();
  }

  stopWatchdog(): void {
    clearInterval(this.watchdog);
  }
}
