/**
 * update_engine's status machine as a pure function: `transition(state, event)` → next state, or
 * E_CONFLICT naming the status and the event when the event is not allowed there. Unlike the
 * original (which defined VERIFYING and never set it) the payload check is its own step:
 *
 *   IDLE ──check──▶ CHECKING_FOR_UPDATE ──no-update──▶ IDLE
 *                                       └─available──▶ UPDATE_AVAILABLE ──progress──▶ DOWNLOADING
 *   DOWNLOADING ──downloaded──▶ VERIFYING ──verified──▶ FINALIZING ──written──▶ UPDATED_NEED_REBOOT
 *   any active step ──error──▶ REPORTING_ERROR_EVENT ──reported──▶ IDLE
 *   UPDATE_AVAILABLE ──check-done──▶ IDLE (a check without apply; NEW_VERSION stays shown)
 *   UPDATED_NEED_REBOOT ──check──▶ UPDATED_NEED_REBOOT (a check only pings) ; ──reset──▶ IDLE
 *
 * The status file (status.json in the staging directory) keeps it across CLI runs and restarts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FlotillaError, isErrno } from '../lib/errors.js';
import { writeAtomic } from '../lib/fs.js';

export const STATUSES = [
  'UPDATE_STATUS_IDLE',
  'UPDATE_STATUS_CHECKING_FOR_UPDATE',
  'UPDATE_STATUS_UPDATE_AVAILABLE',
  'UPDATE_STATUS_DOWNLOADING',
  'UPDATE_STATUS_VERIFYING',
  'UPDATE_STATUS_FINALIZING',
  'UPDATE_STATUS_UPDATED_NEED_REBOOT',
  'UPDATE_STATUS_REPORTING_ERROR_EVENT',
] as const;
export type Status = (typeof STATUSES)[number];

export interface EngineState {
  status: Status;
  /** Unix seconds of the last completed check (0: never). */
  lastCheckedTime: number;
  /** 0..1 (download fraction). */
  progress: number;
  /** `0.0.0` when unknown, as update_engine. */
  newVersion: string;
  newSize: number;
  /** The last error (code and message), kept after the error event until the next check. */
  lastError?: string;
  /** The slot an installed update went to. */
  slot?: 'A' | 'B';
}

export type EngineEvent =
  | { type: 'check' }
  | { type: 'no-update'; at: number }
  | { type: 'available'; at: number; version: string; size: number }
  | { type: 'check-done' }
  | { type: 'progress'; fraction: number }
  | { type: 'downloaded' }
  | { type: 'verified' }
  | { type: 'written'; slot: 'A' | 'B' }
  | { type: 'error'; message: string; at?: number }
  | { type: 'reported' }
  | { type: 'reset' };

export const INITIAL: EngineState = {
  status: 'UPDATE_STATUS_IDLE',
  lastCheckedTime: 0,
  progress: 0,
  newVersion: '0.0.0',
  newSize: 0,
};

const ACTIVE: readonly Status[] = [
  'UPDATE_STATUS_CHECKING_FOR_UPDATE',
  'UPDATE_STATUS_UPDATE_AVAILABLE',
  'UPDATE_STATUS_DOWNLOADING',
  'UPDATE_STATUS_VERIFYING',
  'UPDATE_STATUS_FINALIZING',
];

function refuse(s: EngineState, e: EngineEvent): never {
  throw new FlotillaError('E_CONFLICT', `update: event ${e.type} is not allowed in ${s.status}`, {
    status: s.status,
    event: e.type,
  });
}

export function transition(s: EngineState, e: EngineEvent): EngineState {
  const at = (st: Status) => s.status === st;
  switch (e.type) {
    case 'check':
      if (at('UPDATE_STATUS_IDLE')) {
        const { lastError: _drop, ...rest } = s;
        return { ...rest, status: 'UPDATE_STATUS_CHECKING_FOR_UPDATE', progress: 0 };
      }
      if (at('UPDATE_STATUS_UPDATED_NEED_REBOOT')) return s;
      return refuse(s, e);
    case 'no-update':
      if (!at('UPDATE_STATUS_CHECKING_FOR_UPDATE')) return refuse(s, e);
      return { ...INITIAL, lastCheckedTime: e.at };
    case 'available':
      if (!at('UPDATE_STATUS_CHECKING_FOR_UPDATE')) return refuse(s, e);
      return {
        ...s,
        status: 'UPDATE_STATUS_UPDATE_AVAILABLE',
        lastCheckedTime: e.at,
        newVersion: e.version,
        newSize: e.size,
        progress: 0,
      };
    case 'check-done':
      // A check only (`flotilla update check`): back to IDLE, the found version still shown.
      if (!at('UPDATE_STATUS_UPDATE_AVAILABLE')) return refuse(s, e);
      return { ...s, status: 'UPDATE_STATUS_IDLE', progress: 0 };
    case 'progress':
      if (!at('UPDATE_STATUS_UPDATE_AVAILABLE') && !at('UPDATE_STATUS_DOWNLOADING')) return refuse(s, e);
      if (!(e.fraction >= 0 && e.fraction <= 1)) return refuse(s, e);
      return { ...s, status: 'UPDATE_STATUS_DOWNLOADING', progress: Math.max(s.progress, e.fraction) };
    case 'downloaded':
      if (!at('UPDATE_STATUS_UPDATE_AVAILABLE') && !at('UPDATE_STATUS_DOWNLOADING')) return refuse(s, e);
      return { ...s, status: 'UPDATE_STATUS_VERIFYING', progress: 1 };
    case 'verified':
      if (!at('UPDATE_STATUS_VERIFYING')) return refuse(s, e);
      return { ...s, status: 'UPDATE_STATUS_FINALIZING' };
    case 'written':
      if (!at('UPDATE_STATUS_FINALIZING')) return refuse(s, e);
      return { ...s, status: 'UPDATE_STATUS_UPDATED_NEED_REBOOT', progress: 1, slot: e.slot };
    case 'error':
      if (!ACTIVE.includes(s.status)) return refuse(s, e);
      return {
        ...s,
        status: 'UPDATE_STATUS_REPORTING_ERROR_EVENT',
        lastError: e.message,
        ...(e.at !== undefined && at('UPDATE_STATUS_CHECKING_FOR_UPDATE') ? { lastCheckedTime: e.at } : {}),
      };
    case 'reported':
      if (!at('UPDATE_STATUS_REPORTING_ERROR_EVENT')) return refuse(s, e);
      return {
        ...INITIAL,
        lastCheckedTime: s.lastCheckedTime,
        ...(s.lastError ? { lastError: s.lastError } : {}),
      };
    case 'reset':
      // ResetStatus: only from IDLE (no-op) or NEED_REBOOT (clears version and size).
      if (at('UPDATE_STATUS_IDLE')) return s;
      if (at('UPDATE_STATUS_UPDATED_NEED_REBOOT')) return { ...INITIAL, lastCheckedTime: s.lastCheckedTime };
      return refuse(s, e);
  }
}

/** `update_engine_client -status` output, byte for byte as the original printed it. */
export function formatStatus(s: EngineState): string {
  return (
    `LAST_CHECKED_TIME=${s.lastCheckedTime}\n` +
    `PROGRESS=${s.progress.toFixed(6)}\n` +
    `CURRENT_OP=${s.status}\n` +
    `NEW_VERSION=${s.newVersion}\n` +
    `NEW_SIZE=${s.newSize}\n`
  );
}

export const STATUS_FILE = 'status.json';

/** The persisted state; INITIAL when there is none. A damaged file is E_CONFIG naming it. */
export function readState(dir: string): EngineState {
  const path = join(dir, STATUS_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return INITIAL;
    throw err;
  }
  let v: Partial<EngineState>;
  try {
    v = JSON.parse(text) as Partial<EngineState>;
  } catch {
    throw new FlotillaError('E_CONFIG', `${path}: not JSON`, { file: path });
  }
  if (!v || !STATUSES.includes(v.status as Status))
    throw new FlotillaError('E_CONFIG', `${path}: no valid status`, { file: path });
  return { ...INITIAL, ...v };
}

export function writeState(dir: string, s: EngineState): void {
  writeAtomic(join(dir, STATUS_FILE), JSON.stringify(s) + '\n', { mode: 0o600, mkdirMode: 0o700 });
}

/** Dotted numeric compare (4081.2.0 < 4081.10.0); non-numeric parts compare as strings. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.+-]/);
  const pb = b.split(/[.+-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '0';
    const y = pb[i] ?? '0';
    const nx = /^\d+$/.test(x) ? Number(x) : NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : NaN;
    const c = !Number.isNaN(nx) && !Number.isNaN(ny) ? nx - ny : x < y ? -1 : x > y ? 1 : 0;
    if (c !== 0) return Math.sign(c);
  }
  return 0;
}
