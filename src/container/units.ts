/**
 * ContainerUnits: the agent's Docker side of container units, implementing the agent's UnitHooks
 * port (src/agent/unit-hooks.ts). The machine agent calls it at fixed points and otherwise stays as
 * it was:
 *
 *   prepareInstall(name, hash, body)  a container unit is installed as its generated service (and
 *                                     its run spec is written atomically, 0600); other units as is
 *   prepare(desired, observed)        before planning: which launched container units must pull
 *                                     first (`beforeStart.pull`), wait for a pull or stay failed
 *                                     (`beforeStart.wait`), or run again because Docker is back
 *                                     (`retry`); overlays `activating/pulling` and `failed/failed`
 *                                     on what systemd reports so the pure planner sees them. Returns
 *                                     new inputs; the agent's are left as they are
 *   pull(name, image)                 the executor's `pull` action: starts the pull in the
 *                                     background and returns; the result triggers a reconcile
 *   decorate(record)                  the published state: the overlay, the reason, the container
 *                                     (name, image, state, health) and pull progress
 *   forget(name)                      the unit was uninstalled
 *
 * Its parts: the spec cache (spec-cache.ts), pulls and their ledger (pulls.ts), the events stream
 * with resync (docker-watch.ts), the status overlay (overlay.ts), the publish timers
 * (publish-timers.ts); time comes from the Clock port.
 *
 * Bounded by construction (never a hot loop): one pull attempt per desired-state change of a unit
 * (a failure sticks until the unit is stopped and started again, or its file changes); a failure
 * because Docker could not be reached is retried once each time Docker comes back (the events
 * stream reconnects); each pull has a deadline. Docker being away never stops the agent: every
 * call is caught and becomes a reason (`docker unavailable: …`).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DesiredUnit, ObservedUnit, PlanInputs, UnitHooks } from '../agent/unit-hooks.js';
import type { DockerPort } from '../docker/port.js';
import { normalizeImageReference } from '../docker/reference.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { isCode } from '../lib/errors.js';
import { writeAtomic } from '../lib/fs.js';
import type { Logger } from '../lib/log.js';
import type { PullStateInfo, UnitStateRecord } from '../registry/types.js';
import { UnitFile } from '../unit/index.js';
import { DockerWatch } from './docker-watch.js';
import { generateContainerService, installedHash, safeFileName, type RunSpec } from './generate.js';
import { overlayRecord } from './overlay.js';
import { ImagePulls, progressMeter } from './pulls.js';
import { PublishTimers } from './publish-timers.js';
import { readStatus } from './runner.js';
import { SpecCache } from './spec-cache.js';
import type { ContainerSpec } from './spec.js';
import { BACK_RETRIES, BACK_RETRY_SPACING_MS, DOCKER_RETRY_MS, type Track } from './track.js';

export interface ContainerUnitsDeps {
  docker: DockerPort;
  machineID: string;
  dockerSocket: string;
  /** Where run specs and runner status files live (e.g. /run/flotilla/containers). */
  specDir: string;
  /** Where the ledger of images flotilla pulled lives (the agent's data dir). */
  dataDir: string;
  log: Logger;
  /** Ask the agent for a reconcile. */
  trigger(): void;
  /** Ask the agent to publish one unit's state again (container or pull progress changed). */
  publish(name: string): void;
  /** The runner's command; default: this node and this build's dist/container/runner-main.js. */
  runner?: { node: string; entry: string };
  /** Deadline of one pull, ms (default 10 min). */
  pullTimeoutMs?: number;
  /** Pull progress is published at most this often, ms (default 1000). */
  progressEveryMs?: number;
  /** Wall time and timers (default: the system clock). */
  clock?: Clock;
}

/** The runner entry of this build (dist/container/runner-main.js; from src/ under tests: the dist/ twin). */
export function defaultRunner(): { node: string; entry: string } {
  const here = fileURLToPath(new URL('./runner-main.js', import.meta.url));
  return {
    node: process.execPath,
    entry: here.replace(/\/src\/container\/runner-main\.js$/, '/dist/container/runner-main.js'),
  };
}

export class ContainerUnits implements UnitHooks {
  readonly runner: { node: string; entry: string };
  private readonly clock: Clock;
  private readonly specs = new SpecCache();
  private readonly tracks = new Map<string, Track>();
  private readonly watch: DockerWatch;
  private readonly pulls: ImagePulls;
  private readonly timers: PublishTimers;
  private token = 0;
  private closed = false;

  constructor(private readonly d: ContainerUnitsDeps) {
    this.runner = d.runner ?? defaultRunner();
    this.clock = d.clock ?? systemClock;
    this.timers = new PublishTimers(
      this.clock,
      () => d.trigger(),
      (name) => d.publish(name),
    );
    this.pulls = new ImagePulls({
      docker: d.docker,
      dataDir: d.dataDir,
      log: d.log,
      clock: this.clock,
      pullTimeoutMs: d.pullTimeoutMs,
    });
    this.watch = new DockerWatch({
      docker: d.docker,
      machineID: d.machineID,
      log: d.log,
      clock: this.clock,
      specOf: (unit) => this.specs.cached(unit),
      containerUnits: () => this.specs.containerUnits(),
      trigger: () => d.trigger(),
      publish: (unit) => this.timers.schedulePublish(unit),
    });
  }

  /** True while the events stream is connected (Docker answers). */
  get dockerUp(): boolean {
    return this.watch.up;
  }

  /** Counts Docker (re)connections; a docker failure from an earlier epoch may be retried. */
  get epoch(): number {
    return this.watch.epoch;
  }

  start(): void {
    this.watch.start();
  }

  close(): void {
    this.closed = true;
    this.watch.close();
    this.timers.close();
  }

  specPath(name: string): string {
    return join(this.d.specDir, `${safeFileName(name)}.json`);
  }

  statusPath(name: string): string {
    return join(this.d.specDir, `${safeFileName(name)}.status.json`);
  }

  /** The parsed [Container] section of a unit body (cached per hash); undefined for other units. */
  specOf(name: string, hash: string, body: string): ContainerSpec | undefined {
    return this.specs.specOf(name, hash, body);
  }

  /** A generated container service records the hash of the unit as submitted. */
  installedHash(file: UnitFile): string {
    return installedHash(file);
  }

  /** The contents to install for a unit: the generated service for a container unit. Throws on an invalid spec. */
  prepareInstall(name: string, hash: string, body: string): string {
    const spec = this.specOf(name, hash, body);
    if (!spec) return body;
    const run: RunSpec = {
      version: 1,
      unit: name,
      unitHash: hash,
      machineID: this.d.machineID,
      dockerSocket: this.d.dockerSocket,
      statusFile: this.statusPath(name),
      container: spec,
    };
    const specPath = this.specPath(name);
    writeAtomic(specPath, `${JSON.stringify(run, null, 2)}\n`, { mode: 0o600, mkdirMode: 0o755 });
    // A status from an earlier version of the unit would explain nothing about this one.
    rmSync(this.statusPath(name), { force: true });
    return generateContainerService(name, UnitFile.parse(body), spec, {
      ...this.runner,
      specPath,
    }).serialize();
  }

  forget(name: string): void {
    this.specs.delete(name);
    this.tracks.delete(name);
    this.watch.containers.delete(name);
    rmSync(this.specPath(name), { force: true });
    rmSync(this.statusPath(name), { force: true });
  }

  isContainer(name: string): boolean {
    return this.specs.cached(name) !== undefined;
  }

  /**
   * The planner's inputs with the container side added: desired container units annotated, the
   * observed states overlaid. Returns copies; undeclared and non-container units are passed on as is.
   */
  async prepare(
    desiredIn: readonly DesiredUnit[],
    observedIn: ReadonlyMap<string, ObservedUnit>,
  ): Promise<PlanInputs> {
    const desired = desiredIn.map((d) => ({ ...d }));
    const observed = new Map(observedIn);
    const seen = new Set<string>();
    for (const d of desired) {
      let spec: ContainerSpec | undefined;
      try {
        spec = this.specOf(d.name, d.hash, d.body);
      } catch {
        continue; // the install fails with the reason
      }
      if (!spec) continue;
      seen.add(d.name);
      const launched = d.desiredState === 'launched';
      let t = this.tracks.get(d.name);
      // A new file, or a stop after a start: everything learned about the last attempt is void.
      if (!t || t.hash !== d.hash || (t.launched && !launched)) {
        t = { hash: d.hash, launched };
        this.tracks.set(d.name, t);
      }
      t.launched = launched;
      if (!launched) continue;
      await this.prepareLaunched(d, spec, t, observed);
    }
    for (const name of this.tracks.keys()) if (!seen.has(name)) this.tracks.delete(name);
    return { desired, observed };
  }

  /** One launched container unit: wait, stay failed, retry because Docker is back, or pull first. */
  private async prepareLaunched(
    d: DesiredUnit,
    spec: ContainerSpec,
    t: Track,
    observed: Map<string, ObservedUnit>,
  ): Promise<void> {
    const now = this.clock.now();
    const w = this.watch;
    const o = observed.get(d.name);
    const overlay = (activeState: string, subState: string) => {
      if (o) observed.set(d.name, { ...o, activeState, subState });
    };

    if (t.pulling) {
      d.beforeStart = { wait: `pulling ${t.pulling.image}` };
      overlay('activating', 'pulling');
      return;
    }
    if (
      t.failure?.kind === 'docker' &&
      w.up &&
      (t.failure.epoch < w.epoch || now - t.failure.at >= DOCKER_RETRY_MS)
    )
      t.failure = undefined;
    if (t.failure) {
      d.beforeStart = { wait: t.failure.reason };
      overlay('failed', 'failed');
      return;
    }

    const willStart =
      o === undefined ||
      o.loadState === 'not-found' ||
      (o.hash !== undefined && o.hash !== d.hash) ||
      o.activeState === 'inactive';
    if (!willStart) {
      const r = t.retried;
      const mayRetry =
        r === undefined ||
        r.epoch !== w.epoch ||
        (r.count < BACK_RETRIES && now - r.at >= BACK_RETRY_SPACING_MS);
      if (o.activeState === 'failed' && w.up && mayRetry) {
        const st = readStatus(this.statusPath(d.name));
        // Failed because Docker went away: the runner lost dockerd, or its container was killed
        // by dockerd's shutdown (up to its stop timeout before the API closed).
        const whileAway =
          w.lastDownAt > 0 && st !== undefined && st.at >= w.lastDownAt - 30_000 && st.at <= w.lastUpAt;
        if (st?.phase === 'failed' && (st.kind === 'docker' || whileAway)) {
          const count = r && r.epoch === w.epoch ? r.count + 1 : 1;
          t.retried = { epoch: w.epoch, count, at: now };
          d.retry = `Docker is back (the unit failed with: ${st.reason ?? 'docker unavailable'})`;
          await this.decidePull(d, spec, t);
          // Look again later: systemd may refuse this start (its start rate limit).
          if (count < BACK_RETRIES) this.timers.later(BACK_RETRY_SPACING_MS + 100);
        }
      }
      return;
    }
    await this.decidePull(d, spec, t);
    if (t.failure) overlay('failed', 'failed');
  }

  /** Sets `d.beforeStart.pull` when the image must be pulled first; records a failure when Docker is away. */
  private async decidePull(d: DesiredUnit, spec: ContainerSpec, t: Track): Promise<void> {
    if (spec.pullPolicy === 'never') return; // the runner says clearly when the image is missing
    const image = normalizeImageReference(spec.image);
    if (spec.pullPolicy === 'always' && t.pulledImage !== image) {
      d.beforeStart = { pull: image, reason: `PullPolicy=always: pulling ${image} before the start` };
      return;
    }
    try {
      if (!(await this.d.docker.inspectImage(image))) {
        d.beforeStart = { pull: image, reason: `image ${image} is not present: pulling it before the start` };
      }
    } catch (err) {
      const reason = isCode(err, 'E_DOCKER_UNAVAILABLE')
        ? (err as Error).message
        : `docker unavailable: ${(err as Error).message}`;
      t.failure = { reason, kind: 'docker', epoch: this.watch.epoch, at: this.clock.now() };
      d.beforeStart = { wait: reason };
      this.d.log.warn({ unit: d.name, err: reason }, `${d.name}: not started`);
    }
  }

  /** The executor's `pull` action: start pulling in the background. */
  pull(name: string, image: string): void {
    const t = this.tracks.get(name);
    if (!t || t.pulling) return;
    const token = ++this.token;
    const progress: PullStateInfo = { image, current: 0, total: 0, layers: 0, layersDone: 0 };
    t.pulling = { image, progress, token };
    const meter = progressMeter(progress);
    let lastPublish = 0;
    const every = this.d.progressEveryMs ?? 1000;
    const onProgress = (p: { id?: string; status: string; current?: number; total?: number }) => {
      if (!meter(p)) return;
      if (this.clock.now() - lastPublish >= every) {
        lastPublish = this.clock.now();
        this.timers.schedulePublish(name);
      }
    };
    this.d.log.info({ unit: name, image }, `pulling ${image} for ${name}`);
    const t0 = this.clock.now();
    void this.pulls.pull(image, onProgress).then(
      () => {
        const cur = this.tracks.get(name);
        if (!cur || cur.pulling?.token !== token) return;
        cur.pulling = undefined;
        cur.pulledImage = image;
        this.d.log.info({ unit: name, image, ms: this.clock.now() - t0 }, `pulled ${image}`);
        this.d.trigger();
      },
      (err: Error) => {
        const cur = this.tracks.get(name);
        if (!cur || cur.pulling?.token !== token) return;
        cur.pulling = undefined;
        const unavailable = isCode(err, 'E_DOCKER_UNAVAILABLE');
        const reason = unavailable
          ? err.message
          : err.message.startsWith('image pull failed')
            ? err.message
            : `image pull failed: ${err.message}`;
        cur.failure = {
          reason,
          kind: unavailable ? 'docker' : 'pull',
          epoch: this.watch.epoch,
          at: this.clock.now(),
        };
        this.d.log.warn({ unit: name, image, err: reason }, `${name}: ${reason}`);
        this.d.trigger();
        this.timers.schedulePublish(name);
      },
    );
    this.timers.schedulePublish(name);
  }

  /** A unit's published state with the container side added (a new record; others: a copy). */
  decorate(rec: Readonly<UnitStateRecord>): UnitStateRecord {
    const spec = this.specs.cached(rec.name);
    if (!spec) return { ...rec };
    return overlayRecord(rec, {
      spec,
      track: this.tracks.get(rec.name),
      status: () => readStatus(this.statusPath(rec.name)),
      dockerUp: this.watch.up,
      lastDockerError: this.watch.lastError,
      container: this.watch.containers.get(rec.name),
    });
  }

  /** For SIGUSR1 dumps. */
  dump(): Record<string, unknown> {
    return {
      dockerUp: this.watch.up,
      epoch: this.watch.epoch,
      tracks: Object.fromEntries(
        [...this.tracks].map(([k, t]) => [
          k,
          {
            launched: t.launched,
            pulling: t.pulling?.image,
            failure: t.failure?.reason,
            pulled: t.pulledImage,
          },
        ]),
      ),
      containers: Object.fromEntries(this.watch.containers),
    };
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
