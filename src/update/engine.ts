/**
 * The update flow (update_engine's attempter): check → download → verify → write → need reboot,
 * every step a `transition` of the pure state machine (state.ts), persisted to status.json so
 * `update status` (and `update_engine_client -status`) can show it from another process.
 *
 * The slot write is a port (`SlotWriter`): the CLI passes one that runs `update write-slot` in a
 * throttled transient unit (unit.ts), or in process when UPDATE_TRANSIENT_UNIT=no. After the
 * write the need-reboot marker is set for the reboot manager (locksmith's send-need-reboot).
 *
 * A run that died (kill -9, power loss) leaves an active status with a pid that is gone: the next
 * run reports it as an error and starts over; the download resumes from the staged part file.
 */
import { FlotillaError } from '../lib/errors.js';
import { nullLogger, type Logger } from '../lib/log.js';
import { hostArch, type Manifest, type TrustedKey } from './bundle.js';
import type { UpdateConfig } from './config.js';
import type { ResolvedUpdate, UpdateSource } from './omaha.js';
import { bootedSlot, openSlotDisk, slotBytes } from './disk-ops.js';
import { downloadBundle, fetchVerifiedManifest, type DownloadOptions } from './download.js';
import { loadStagedBundle } from './staging.js';
import { omahaErrorCode } from './omaha-codes.js';
import { other, type SlotName } from './slots.js';
import {
  compareVersions,
  readState,
  transition,
  writeState,
  type EngineEvent,
  type EngineState,
} from './state.js';

export type SlotWriter = (w: { disk: string; booted: SlotName }) => Promise<void>;

export interface EngineDeps {
  config: UpdateConfig;
  keys: readonly TrustedKey[];
  /** Required for apply. */
  writer?: SlotWriter;
  /** Marks the machine as needing a reboot (the reboot manager's marker). */
  needReboot?: () => void;
  /** The running slot (a flag); default from /proc/cmdline. */
  booted?: string;
  cmdlineFile?: string;
  now?: () => number;
  log?: Logger;
  onState?: (s: EngineState) => void;
  download?: Partial<
    Pick<DownloadOptions, 'attempts' | 'backoffMs' | 'maxBackoffMs' | 'idleTimeoutMs' | 'totalTimeoutMs'>
  >;
  signal?: AbortSignal;
  /** Where updates are found (the Omaha transport); default: the signed manifest at SERVER. */
  source?: UpdateSource;
}

interface Stored extends EngineState {
  pid?: number;
}

function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

class Run {
  state: Stored;
  private lastPersist = 0;
  private lastProgress = 0;

  constructor(private readonly d: EngineDeps) {
    this.state = readState(d.config.stagingDir);
    const active = !['UPDATE_STATUS_IDLE', 'UPDATE_STATUS_UPDATED_NEED_REBOOT'].includes(this.state.status);
    if (active && this.state.pid !== process.pid && alive(this.state.pid))
      throw new FlotillaError(
        'E_CONFLICT',
        `an update is already running (pid ${this.state.pid}, ${this.state.status})`,
        {
          pid: this.state.pid,
        },
      );
    if (active) {
      // The run that set this died: report it, start from IDLE.
      const msg = `the previous update run (pid ${this.state.pid ?? '?'}) stopped in ${this.state.status}`;
      (d.log ?? nullLogger).warn({ status: this.state.status }, msg);
      if (this.state.status !== 'UPDATE_STATUS_REPORTING_ERROR_EVENT')
        this.step({ type: 'error', message: msg });
      this.step({ type: 'reported' });
    }
  }

  step(e: EngineEvent, force = true): void {
    this.state = { ...transition(this.state, e), pid: process.pid };
    const now = Date.now();
    // Progress is throttled as update_engine broadcast it: ≥1 % or ≥10 s, and always at 100 %.
    if (e.type === 'progress' && !force) {
      if (e.fraction < 1 && e.fraction - this.lastProgress < 0.01 && now - this.lastPersist < 10_000) return;
      this.lastProgress = e.fraction;
    }
    this.lastPersist = now;
    writeState(this.d.config.stagingDir, this.state);
    this.d.onState?.(this.state);
  }
}

const nowSec = (d: EngineDeps) => Math.floor((d.now?.() ?? Date.now()) / 1000);

function manifestUrl(c: UpdateConfig): string {
  if (!c.manifestUrl)
    throw new FlotillaError('E_CONFIG', 'update.conf: SERVER is not set (the bundle manifest URL)', {
      key: 'SERVER',
    });
  return c.manifestUrl;
}

async function slotTarget(d: EngineDeps): Promise<{ disk: string; booted: SlotName; slotSize: number }> {
  const disk = d.config.disk;
  if (!disk)
    throw new FlotillaError('E_CONFIG', 'update.conf: UPDATE_DISK is not set (the disk with the A/B slots)', {
      key: 'UPDATE_DISK',
    });
  const sd = await openSlotDisk(disk, { writable: false });
  try {
    const booted = bootedSlot(sd, d.booted, d.cmdlineFile);
    return { disk, booted, slotSize: slotBytes(sd, other(booted)).size };
  } finally {
    await sd.disk.close();
  }
}

export interface CheckResult {
  state: EngineState;
  manifest?: Manifest;
  available: boolean;
}

async function doCheck(
  run: Run,
  d: EngineDeps,
): Promise<CheckResult & { disk: string; booted: SlotName; found?: ResolvedUpdate }> {
  run.step({ type: 'check' });
  const t = await slotTarget(d);
  const found = d.source ? await d.source.check() : { manifestUrl: manifestUrl(d.config) };
  if (!found) {
    run.step({ type: 'no-update', at: nowSec(d) });
    return { state: run.state, available: false, ...t };
  }
  const { manifest } = await fetchVerifiedManifest({
    manifestUrl: found.manifestUrl,
    ...('verify' in found ? { checkManifest: found.verify } : {}),
    keys: d.keys,
    target: { board: d.config.board, arch: hostArch(), slotSize: t.slotSize },
    ...d.download,
    ...(d.signal ? { signal: d.signal } : {}),
  });
  if (compareVersions(manifest.version, d.config.currentVersion) <= 0) {
    run.step({ type: 'no-update', at: nowSec(d) });
    return { state: run.state, manifest, available: false, ...t };
  }
  run.step({ type: 'available', at: nowSec(d), version: manifest.version, size: manifest.size });
  return { state: run.state, manifest, available: true, ...t, ...('verify' in found ? { found } : {}) };
}

async function guarded<T>(run: Run, d: EngineDeps, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const msg = err instanceof FlotillaError ? `${err.code}: ${err.message}` : (err as Error).message;
    if (
      ![
        'UPDATE_STATUS_IDLE',
        'UPDATE_STATUS_UPDATED_NEED_REBOOT',
        'UPDATE_STATUS_REPORTING_ERROR_EVENT',
      ].includes(run.state.status)
    ) {
      run.step({ type: 'error', message: msg, at: nowSec(d) });
      run.step({ type: 'reported' });
    }
    (d.log ?? nullLogger).error({ error: msg }, 'update failed');
    await d.source?.event('error', { errorCode: omahaErrorCode(err) });
    throw err;
  }
}

/** Check for an update (manifest only); the status returns to IDLE with NEW_VERSION shown. */
export async function checkForUpdate(d: EngineDeps): Promise<CheckResult> {
  const run = new Run(d);
  if (run.state.status === 'UPDATE_STATUS_UPDATED_NEED_REBOOT') return { state: run.state, available: false };
  return guarded(run, d, async () => {
    const r = await doCheck(run, d);
    if (r.available) run.step({ type: 'check-done' });
    return { state: run.state, available: r.available, ...(r.manifest ? { manifest: r.manifest } : {}) };
  });
}

/** The whole update. Resolves with the final state (IDLE when there was none, NEED_REBOOT after one). */
export async function applyUpdate(d: EngineDeps): Promise<EngineState> {
  const run = new Run(d);
  if (run.state.status === 'UPDATE_STATUS_UPDATED_NEED_REBOOT') return run.state;
  const writer = d.writer;
  if (!writer) throw new Error('applyUpdate needs a slot writer');
  return guarded(run, d, async () => {
    const r = await doCheck(run, d);
    if (!r.available) return run.state;
    const target = { board: d.config.board, arch: hostArch() };
    await d.source?.event('download-started');
    await downloadBundle({
      manifestUrl: r.found?.manifestUrl ?? manifestUrl(d.config),
      ...(r.found ? { checkManifest: r.found.verify } : {}),
      keys: d.keys,
      target: { ...target, slotSize: (await slotTarget(d)).slotSize },
      stagingDir: d.config.stagingDir,
      ...d.download,
      ...(d.signal ? { signal: d.signal } : {}),
      ...(d.log ? { log: d.log } : {}),
      onProgress: (p) => run.step({ type: 'progress', fraction: p.bytes / p.total }, false),
    });
    run.step({ type: 'downloaded' });
    await d.source?.event('download-finished');
    await loadStagedBundle(d.config.stagingDir, d.keys, target);
    run.step({ type: 'verified' });
    await writer({ disk: r.disk, booted: r.booted });
    run.step({ type: 'written', slot: other(r.booted) });
    await d.source?.event('installed', { version: r.manifest!.version });
    d.needReboot?.();
    return run.state;
  });
}

/** ResetStatus: from NEED_REBOOT back to IDLE (the written slot keeps its flags). */
export function resetStatus(d: EngineDeps): EngineState {
  const run = new Run(d);
  run.step({ type: 'reset' });
  return run.state;
}
