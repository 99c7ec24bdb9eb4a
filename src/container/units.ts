/**
 * ContainerUnits: the agent's Docker side of container units. The machine agent calls it at fixed
 * points and otherwise stays as it was:
 *
 *   prepareInstall(name, hash, body)  a container unit is installed as its generated service (and
 *                                     its run spec is written atomically, 0600); other units as is
 *   prepare(desired, observed)        before planning: which launched container units must pull
 *                                     first (`beforeStart.pull`), wait for a pull or stay failed
 *                                     (`beforeStart.wait`), or run again because Docker is back
 *                                     (`retry`); overlays `activating/pulling` and `failed/failed`
 *                                     on what systemd reports so the pure planner sees them
 *   pull(name, image)                 the executor's `pull` action: starts the pull in the
 *                                     background and returns; the result triggers a reconcile
 *   decorate(record)                  the published state: the overlay, the reason, the container
 *                                     (name, image, state, health) and pull progress
 *   forget(name)                      the unit was uninstalled
 *
 * Bounded by construction (never a hot loop): one pull attempt per desired-state change of a unit
 * (a failure sticks until the unit is stopped and started again, or its file changes); a failure
 * because Docker could not be reached is retried once each time Docker comes back (the events
 * stream reconnects); each pull has a deadline. Docker being away never stops the agent: every
 * call is caught and becomes a reason (`docker unavailable: …`).
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DesiredUnit, ObservedUnit } from '../agent/planner.js';
import { FlotillaError, isCode } from '../lib/errors.js';
import { writeAtomic } from '../lib/fs.js';
import type { ContainerStateInfo, PullStateInfo, UnitStateRecord } from '../registry/types.js';
import type { Logger } from '../lib/log.js';
import { UnitFile } from '../unit/index.js';
import { generateContainerService, safeFileName, type RunSpec } from './generate.js';
import {
  LABEL_MACHINE,
  LABEL_UNIT,
  type ContainerEvent,
  type DockerPort,
  type EventStream,
} from '../docker/port.js';
import { normalizeImageReference } from '../docker/reference.js';
import { readStatus } from './runner.js';
import { isContainerUnit, parseContainerSection, type ContainerSpec } from './spec.js';

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
}

interface Failure {
  reason: string;
  kind: 'docker' | 'pull';
  /** The Docker epoch it happened in (docker failures are retried in a later epoch). */
  epoch: number;
  /** ms since the epoch. */
  at: number;
}

/** A docker failure while the events stream stayed connected is retried after this long. */
const DOCKER_RETRY_MS = 30_000;
/**
 * A unit that failed because Docker went away is started again when Docker is back: at most this
 * many times per return of Docker, this far apart (systemd refuses a start while the unit's start
 * rate limit, 5 starts in 10 s by default, is still hit by its own Restart= attempts).
 */
const BACK_RETRIES = 3;
const BACK_RETRY_SPACING_MS = 12_000;

interface Track {
  hash: string;
  launched: boolean;
  pulling?: { image: string; progress: PullStateInfo; token: number } | undefined;
  pulledImage?: string;
  failure?: Failure | undefined;
  /** Restarts of a failed unit because Docker came back: in which epoch, how many, when. */
  retried?: { epoch: number; count: number; at: number };
}

/** The runner entry of this build (dist/container/runner-main.js; from src/ under tests: the dist/ twin). */
export function defaultRunner(): { node: string; entry: string } {
  const here = fileURLToPath(new URL('./runner-main.js', import.meta.url));
  return {
    node: process.execPath,
    entry: here.replace(/\/src\/container\/runner-main\.js$/, '/dist/container/runner-main.js'),
  };
}

export class ContainerUnits {
  readonly runner: { node: string; entry: string };
  /** True while the events stream is connected (Docker answers). */
  dockerUp = false;
  /** Counts Docker (re)connections; a docker failure from an earlier epoch may be retried. */
  epoch = 0;
  private readonly specs = new Map<string, { hash: string; spec?: ContainerSpec; error?: string }>();
  private readonly tracks = new Map<string, Track>();
  /** unit → its container as last seen (events + resync). */
  private readonly containers = new Map<string, ContainerStateInfo>();
  private readonly pullsInFlight = new Map<string, Promise<void>>();
  private events: EventStream | undefined;
  private token = 0;
  private readonly publishTimers = new Map<string, NodeJS.Timeout>();
  private lastDockerError = 'not connected yet';
  /** When the events stream last broke and last came back (ms since the epoch). */
  private lastDownAt = 0;
  private lastUpAt = 0;
  private closed = false;

  constructor(private readonly d: ContainerUnitsDeps) {
    this.runner = d.runner ?? defaultRunner();
  }

  start(): void {
    this.events = this.d.docker.events({
      labels: [`${LABEL_MACHINE}=${this.d.machineID}`],
      onEvent: (ev) => this.onEvent(ev),
      onConnected: (reconnected) => {
        this.dockerUp = true;
        this.lastUpAt = Date.now();
        this.epoch++;
        this.d.log.info({ epoch: this.epoch }, reconnected ? 'docker is back' : 'docker connected');
        void this.resync().finally(() => this.d.trigger());
      },
      onDisconnected: (err) => {
        const was = this.dockerUp;
        this.dockerUp = false;
        this.lastDockerError = err.message.replace(/^docker unavailable: /, '');
        if (was) {
          this.lastDownAt = Date.now();
          this.d.log.warn(
            { err: err.message },
            'docker went away: container units cannot start until it is back',
          );
          this.d.trigger();
        }
      },
    });
  }

  close(): void {
    this.closed = true;
    this.events?.close();
    for (const t of this.publishTimers.values()) clearTimeout(t);
    this.publishTimers.clear();
  }

  /** Ask for a reconcile after `ms` (bounded retries). */
  private later(ms: number): void {
    if (this.closed) return;
    const t = setTimeout(() => {
      if (!this.closed) this.d.trigger();
    }, ms);
    t.unref?.();
  }

  /** Publish a unit's state soon; a burst of events (create, start, health) costs one write. */
  private schedulePublish(name: string): void {
    if (this.closed || this.publishTimers.has(name)) return;
    const t = setTimeout(() => {
      this.publishTimers.delete(name);
      this.d.publish(name);
    }, 50);
    t.unref?.();
    this.publishTimers.set(name, t);
  }

  specPath(name: string): string {
    return join(this.d.specDir, `${safeFileName(name)}.json`);
  }

  statusPath(name: string): string {
    return join(this.d.specDir, `${safeFileName(name)}.status.json`);
  }

  /** The parsed [Container] section of a unit body (cached per hash); undefined for other units. */
  specOf(name: string, hash: string, body: string): ContainerSpec | undefined {
    const cached = this.specs.get(name);
    if (cached && cached.hash === hash) {
      if (cached.error !== undefined) throw new FlotillaError('E_CONTAINER_SPEC', cached.error);
      return cached.spec;
    }
    let file: UnitFile;
    try {
      file = UnitFile.parse(body);
    } catch {
      this.specs.set(name, { hash });
      return undefined; // not ours to judge: the install fails as it always did
    }
    if (!isContainerUnit(file)) {
      this.specs.set(name, { hash });
      return undefined;
    }
    try {
      const spec = parseContainerSection(name, file);
      this.specs.set(name, { hash, spec });
      return spec;
    } catch (err) {
      this.specs.set(name, { hash, error: (err as Error).message });
      throw err;
    }
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
    this.containers.delete(name);
    rmSync(this.specPath(name), { force: true });
    rmSync(this.statusPath(name), { force: true });
  }

  isContainer(name: string): boolean {
    return this.specs.get(name)?.spec !== undefined;
  }

  private track(name: string): Track | undefined {
    return this.tracks.get(name);
  }

  /**
   * Annotate the desired container units before planning and overlay `observed` (in place).
   * Undeclared units and non-container units are left alone.
   */
  async prepare(desired: DesiredUnit[], observed: Map<string, ObservedUnit>): Promise<void> {
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
      const o = observed.get(d.name);
      const overlay = (activeState: string, subState: string) => {
        if (o) observed.set(d.name, { ...o, activeState, subState });
      };

      if (t.pulling) {
        d.beforeStart = { wait: `pulling ${t.pulling.image}` };
        overlay('activating', 'pulling');
        continue;
      }
      if (
        t.failure?.kind === 'docker' &&
        this.dockerUp &&
        (t.failure.epoch < this.epoch || Date.now() - t.failure.at >= DOCKER_RETRY_MS)
      )
        t.failure = undefined;
      if (t.failure) {
        d.beforeStart = { wait: t.failure.reason };
        overlay('failed', 'failed');
        continue;
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
          r.epoch !== this.epoch ||
          (r.count < BACK_RETRIES && Date.now() - r.at >= BACK_RETRY_SPACING_MS);
        if (o.activeState === 'failed' && this.dockerUp && mayRetry) {
          const st = readStatus(this.statusPath(d.name));
          // Failed because Docker went away: the runner lost dockerd, or its container was killed
          // by dockerd's shutdown (up to its stop timeout before the API closed).
          const whileAway =
            this.lastDownAt > 0 &&
            st !== undefined &&
            st.at >= this.lastDownAt - 30_000 &&
            st.at <= this.lastUpAt;
          if (st?.phase === 'failed' && (st.kind === 'docker' || whileAway)) {
            const count = r && r.epoch === this.epoch ? r.count + 1 : 1;
            t.retried = { epoch: this.epoch, count, at: Date.now() };
            d.retry = `Docker is back (the unit failed with: ${st.reason ?? 'docker unavailable'})`;
            await this.decidePull(d, spec, t);
            // Look again later: systemd may refuse this start (its start rate limit).
            if (count < BACK_RETRIES) this.later(BACK_RETRY_SPACING_MS + 100);
          }
        }
        continue;
      }
      await this.decidePull(d, spec, t);
      if (t.failure) overlay('failed', 'failed');
    }
    for (const name of this.tracks.keys()) if (!seen.has(name)) this.tracks.delete(name);
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
      t.failure = { reason, kind: 'docker', epoch: this.epoch, at: Date.now() };
      d.beforeStart = { wait: reason };
      this.d.log.warn({ unit: d.name, err: reason }, `${d.name}: not started`);
    }
  }

  /** The executor's `pull` action: start pulling in the background. */
  pull(name: string, image: string): void {
    const t = this.track(name);
    if (!t || t.pulling) return;
    const token = ++this.token;
    const progress: PullStateInfo = { image, current: 0, total: 0, layers: 0, layersDone: 0 };
    t.pulling = { image, progress, token };
    const layers = new Map<string, { current: number; total: number; done: boolean }>();
    let lastPublish = 0;
    const every = this.d.progressEveryMs ?? 1000;
    const onProgress = (p: { id?: string; status: string; current?: number; total?: number }) => {
      if (!p.id || /^(Pulling from|Digest|Status)/.test(p.status)) return;
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
      if (Date.now() - lastPublish >= every) {
        lastPublish = Date.now();
        this.schedulePublish(name);
      }
    };
    this.d.log.info({ unit: name, image }, `pulling ${image} for ${name}`);
    const t0 = Date.now();
    void this.pullShared(image, onProgress).then(
      () => {
        const cur = this.track(name);
        if (!cur || cur.pulling?.token !== token) return;
        cur.pulling = undefined;
        cur.pulledImage = image;
        this.d.log.info({ unit: name, image, ms: Date.now() - t0 }, `pulled ${image}`);
        this.d.trigger();
      },
      (err: Error) => {
        const cur = this.track(name);
        if (!cur || cur.pulling?.token !== token) return;
        cur.pulling = undefined;
        const unavailable = isCode(err, 'E_DOCKER_UNAVAILABLE');
        const reason = unavailable
          ? err.message
          : err.message.startsWith('image pull failed')
            ? err.message
            : `image pull failed: ${err.message}`;
        cur.failure = { reason, kind: unavailable ? 'docker' : 'pull', epoch: this.epoch, at: Date.now() };
        this.d.log.warn({ unit: name, image, err: reason }, `${name}: ${reason}`);
        this.d.trigger();
        this.schedulePublish(name);
      },
    );
    this.schedulePublish(name);
  }

  /** One pull per image at a time; units that need the same image share it. */
  private pullShared(image: string, onProgress: (p: { id?: string; status: string }) => void): Promise<void> {
    const inFlight = this.pullsInFlight.get(image);
    if (inFlight) return inFlight;
    const timeout = this.d.pullTimeoutMs ?? 600_000;
    const p = (async () => {
      const before = await this.d.docker.inspectImage(image).catch(() => undefined);
      const ctrl = new AbortController();
      const timer = setTimeout(() => ctrl.abort(), timeout);
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
        clearTimeout(timer);
      }
      if (!before) this.recordPulled(image);
    })().finally(() => this.pullsInFlight.delete(image));
    this.pullsInFlight.set(image, p);
    return p;
  }

  /** Images flotilla pulled (absent before): `flotilla gc` may remove these, and only these. */
  private recordPulled(image: string): void {
    const path = join(this.d.dataDir, 'docker-images.json');
    const ledger = readPulledImages(this.d.dataDir);
    ledger[image] = { pulledAt: new Date().toISOString() };
    try {
      writeAtomic(path, `${JSON.stringify(ledger, null, 2)}\n`, { mode: 0o644, mkdirMode: 0o755 });
    } catch (err) {
      this.d.log.warn({ err: (err as Error).message, path }, 'cannot record the pulled image');
    }
  }

  /** Add the container side to a unit's published state (in place). */
  decorate(rec: UnitStateRecord): void {
    const cached = this.specs.get(rec.name);
    const spec = cached?.spec;
    if (!spec) return;
    const t = this.track(rec.name);
    if (t?.launched && t.pulling) {
      rec.activeState = 'activating';
      rec.subState = 'pulling';
      rec.pull = { ...t.pulling.progress };
    } else if (t?.launched && t.failure) {
      rec.activeState = 'failed';
      rec.subState = 'failed';
      rec.reason = t.failure.reason;
    } else if (rec.activeState === 'failed') {
      const st = readStatus(this.statusPath(rec.name));
      if (st?.reason) rec.reason = st.reason;
      else if (!this.dockerUp) rec.reason = `docker unavailable: ${this.lastDockerError}`;
    }
    rec.container = this.containers.get(rec.name) ?? {
      name: spec.name,
      image: spec.image,
      state: this.dockerUp ? 'absent' : 'unknown',
      health: 'none',
    };
  }

  private onEvent(ev: ContainerEvent): void {
    const unit = ev.labels[LABEL_UNIT];
    if (!unit || ev.labels[LABEL_MACHINE] !== this.d.machineID) return;
    const spec = this.specs.get(unit)?.spec;
    const prev = this.containers.get(unit);
    const info: ContainerStateInfo = {
      name: ev.name ?? prev?.name ?? spec?.name ?? '',
      image: ev.image ?? prev?.image ?? spec?.image ?? '',
      id: ev.id.slice(0, 12),
      state: prev?.state ?? 'created',
      health: prev?.id === ev.id.slice(0, 12) ? prev.health : 'none',
    };
    switch (ev.kind) {
      case 'create':
        info.state = 'created';
        info.health = 'none';
        break;
      case 'start':
        info.state = 'running';
        if (spec?.health) info.health = 'starting';
        break;
      case 'die':
        info.state = 'exited';
        if (ev.exitCode !== undefined) info.exitCode = ev.exitCode;
        break;
      case 'health_status':
        info.health = ev.health ?? 'none';
        break;
      case 'destroy':
        if (prev?.id !== ev.id.slice(0, 12)) return; // an older container of the unit
        info.state = 'absent';
        delete info.id;
        info.health = 'none';
        break;
      case 'kill':
      case 'stop':
      case 'oom':
        return;
    }
    // Events of a replaced container (stale removal) must not overwrite the new one.
    if (
      prev?.id &&
      prev.id !== info.id &&
      ev.kind !== 'create' &&
      ev.kind !== 'start' &&
      prev.state === 'running'
    )
      return;
    this.containers.set(unit, info);
    if (this.specs.get(unit)?.spec) this.schedulePublish(unit);
  }

  /** Read our containers after (re)connecting: events while away are lost. */
  private async resync(): Promise<void> {
    try {
      const list = await this.d.docker.listContainers({
        labels: [`${LABEL_MACHINE}=${this.d.machineID}`],
        all: true,
      });
      const byUnit = new Map<string, (typeof list)[number]>();
      for (const c of list) {
        const unit = c.labels[LABEL_UNIT];
        if (!unit) continue;
        const prev = byUnit.get(unit);
        // The newest container of a unit is its current one.
        if (!prev || c.created > prev.created) byUnit.set(unit, c);
      }
      this.containers.clear();
      for (const [unit, c] of byUnit) {
        const inspected = await this.d.docker.inspectContainer(c.id).catch(() => undefined);
        const info: ContainerStateInfo = {
          name: c.name,
          image: c.image,
          id: c.id.slice(0, 12),
          state: inspected?.state ?? c.state,
          health: inspected?.health ?? 'none',
        };
        if (inspected && !inspected.running) info.exitCode = inspected.exitCode;
        this.containers.set(unit, info);
      }
      for (const unit of this.specs.keys()) if (this.specs.get(unit)?.spec) this.schedulePublish(unit);
    } catch (err) {
      this.d.log.debug({ err: (err as Error).message }, 'docker resync failed');
    }
  }

  /** For SIGUSR1 dumps. */
  dump(): Record<string, unknown> {
    return {
      dockerUp: this.dockerUp,
      epoch: this.epoch,
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
      containers: Object.fromEntries(this.containers),
    };
  }

  get isClosed(): boolean {
    return this.closed;
  }
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
