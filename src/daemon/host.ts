/**
 * SubsystemHost: runs the agent process's subsystems (subsystem.ts) through their four verbs.
 *
 *   start(ctx)    in the order given; a part that throws is marked failed and left out (its reason
 *                 kept for status), unless it is `required`: then the parts already started are
 *                 stopped in reverse and the error goes to the caller.
 *   reload(next)  every started part, in order; one that throws is logged and keeps its old
 *                 settings. Returns the keys that need a restart, merged.
 *   stop(mode)    the started parts in reverse start order; each one's failure is logged and the
 *                 rest still stop.
 *   status()      name → the part's own snapshot (or why it failed to start).
 */
import type { Logger } from '../lib/log.js';
import type { StopMode, Subsystem, SubsystemContext, SubsystemStatus } from './subsystem.js';

export class SubsystemHost<C = unknown> {
  private readonly started: Subsystem<C>[] = [];
  private readonly failed = new Map<string, string>();

  constructor(
    private readonly parts: readonly Subsystem<C>[],
    private readonly log: Logger,
  ) {
    const names = new Set<string>();
    for (const p of parts) {
      if (names.has(p.name)) throw new Error(`subsystem ${p.name} is registered twice`);
      names.add(p.name);
    }
  }

  async start(ctx: SubsystemContext<C>): Promise<void> {
    for (const part of this.parts) {
      try {
        await part.start(ctx);
        this.started.push(part);
      } catch (err) {
        const reason = (err as Error).message;
        this.failed.set(part.name, reason);
        if (part.required) {
          this.log.error(
            { subsystem: part.name, err: reason },
            `${part.name}: cannot start; the agent stops`,
          );
          await this.stop('leave');
          throw err;
        }
        this.log.error(
          { subsystem: part.name, err: reason },
          `${part.name}: cannot start; running without it`,
        );
      }
    }
  }

  async reload(next: C): Promise<{ needRestart: string[] }> {
    const needRestart = new Set<string>();
    for (const part of [...this.started]) {
      try {
        const out = await part.reload(next);
        for (const k of out.needRestart) needRestart.add(k);
      } catch (err) {
        this.log.error({ subsystem: part.name, err: (err as Error).message }, `${part.name}: reload failed`);
      }
    }
    return { needRestart: [...needRestart] };
  }

  async stop(mode: StopMode): Promise<void> {
    while (this.started.length > 0) {
      const part = this.started.pop()!;
      try {
        await part.stop(mode);
      } catch (err) {
        this.log.error({ subsystem: part.name, err: (err as Error).message }, `${part.name}: stop failed`);
      }
    }
  }

  status(): Record<string, SubsystemStatus> {
    const out: Record<string, SubsystemStatus> = {};
    for (const part of this.parts) {
      const reason = this.failed.get(part.name);
      out[part.name] = reason !== undefined ? { state: 'failed', reason } : part.status();
    }
    return out;
  }
}
