/**
 * Image pulls for container units: one pull per image at a time (units that need the same image
 * share it), a deadline per pull (E_IMAGE_PULL), progress summed over the layers, and the ledger of
 * images flotilla pulled (`flotilla gc` may remove these, and only these).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DockerPort } from '../docker/port.js';
import type { Clock } from '../lib/clock.js';
import { FlotillaError } from '../lib/errors.js';
import { writeAtomic } from '../lib/fs.js';
import type { Logger } from '../lib/log.js';
import type { PullStateInfo } from '../registry/types.js';

export type PullEvent = { id?: string; status: string; current?: number; total?: number };

export interface ImagePullsDeps {
  docker: DockerPort;
  /** Where the ledger lives (the agent's data dir). */
  dataDir: string;
  log: Logger;
  clock: Clock;
  /** Deadline of one pull, ms (default 10 min). */
  pullTimeoutMs?: number | undefined;
}

export class ImagePulls {
  private readonly inFlight = new Map<string, Promise<void>>();

  constructor(private readonly d: ImagePullsDeps) {}

  /** Pull `image` (or join the pull already running); records it in the ledger if it was absent. */
  pull(image: string, onProgress: (p: PullEvent) => void): Promise<void> {
    const inFlight = this.inFlight.get(image);
    if (inFlight) return inFlight;
    const timeout = this.d.pullTimeoutMs ?? 600_000;
    const p = (async () => {
      const before = await this.d.docker.inspectImage(image).catch(() => undefined);
      const ctrl = new AbortController();
      const timer = this.d.clock.setTimeout(() => ctrl.abort(), timeout);
      try {
        await this.d.docker.pullImage(image, onProgress, ctrl.signal);
      } catch (err) {
        if (ctrl.signal.aborted)
          throw new FlotillaError(
            'E_IMAGE_PULL',
            `image pull failed: ${image}: no result after ${Math.round(timeout / 1000)} s`,
          );
        throw err;
      } finally {
        this.d.clock.clearTimeout(timer);
      }
      if (!before) this.recordPulled(image);
    })().finally(() => this.inFlight.delete(image));
    this.inFlight.set(image, p);
    return p;
  }

  /** Images flotilla pulled (absent before): `flotilla gc` may remove these, and only these. */
  private recordPulled(image: string): void {
    const path = join(this.d.dataDir, 'docker-images.json');
    const ledger = readPulledImages(this.d.dataDir);
    ledger[image] = { pulledAt: new Date(this.d.clock.now()).toISOString() };
    try {
      writeAtomic(path, `${JSON.stringify(ledger, null, 2)}\n`, { mode: 0o644, mkdirMode: 0o755 });
    } catch (err) {
      this.d.log.warn({ err: (err as Error).message, path }, 'cannot record the pulled image');
    }
  }
}

/**
 * Sums a pull's progress events over its layers into `progress` (in place: the published state
 * reads it); returns true when a layer event changed it.
 */
export function progressMeter(progress: PullStateInfo): (p: PullEvent) => boolean {
  const layers = new Map<string, { current: number; total: number; done: boolean }>();
  return (p) => {
    if (!p.id || /^(Pulling from|Digest|Status)/.test(p.status)) return false;
    let l = layers.get(p.id);
    if (!l) layers.set(p.id, (l = { current: 0, total: 0, done: false }));
    if (p.status === 'Downloading' && p.total) {
      l.current = p.current ?? 0;
      l.total = p.total;
    }
    if (/^(Download complete|Pull complete|Already exists)/.test(p.status)) {
      if (l.total) l.current = l.total;
      l.done = /^(Pull complete|Already exists)/.test(p.status);
    }
    let cur = 0;
    let tot = 0;
    let done = 0;
    for (const x of layers.values()) {
      cur += x.current;
      tot += x.total;
      if (x.done) done++;
    }
    Object.assign(progress, { current: cur, total: tot, layers: layers.size, layersDone: done });
    return true;
  };
}

/** The ledger of images flotilla pulled: image reference → when. */
export function readPulledImages(dataDir: string): Record<string, { pulledAt: string }> {
  try {
    const v = JSON.parse(readFileSync(join(dataDir, 'docker-images.json'), 'utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, { pulledAt: string }>) : {};
  } catch {
    return {};
  }
}
