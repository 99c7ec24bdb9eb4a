/**
 * flotilla's own API extensions, next to fleet's v1:
 *
 *   GET /flotilla/v1/events[?since=R]       NDJSON stream of cluster changes (below)
 *   GET /flotilla/v1/snapshot               units, states, machines, leader at revision R (snapshot.ts)
 *   GET /flotilla/v1/units/{name}/status    `systemctl status` on the hosting machine (unit-logs.ts)
 *   GET /flotilla/v1/units/{name}/journal   `journalctl [-f]` on the hosting machine, streamed
 *   GET /flotilla/v1/status                 {"machineID","subsystems":{name: status}} (proxy listeners, …)
 *   GET /metrics                            Prometheus text (src/lib/metrics.ts)
 *
 * EVENTS: `application/x-ndjson`, one JSON object per line, fed from the agent's cluster view (its one
 * registry watch; nothing polls). The first line is `{"kind":"hello","revision":R,...}`; every later
 * line has the registry `revision` it happened at (> R), a `kind` and an `action` (`put`|`delete`):
 *   unit      name, desiredState, hash                       (the unit's job record)
 *   schedule  name, machineID | reason                       (where the engine placed it, or why not)
 *   state     name, machineID, hash, systemdLoadState, systemdActiveState, systemdSubState, currentState
 *   machine   id, primaryIP, metadata                        (presence record; delete = machine left)
 *   metadata  machineID, key, value                          (dynamic metadata; "" = removed)
 *   leader    machineID                                      (engine leader)
 * plus `{"kind":"available","available":false|true}` when the registry watch breaks or recovers,
 * `{"kind":"resync","revision":R}` when the view re-read everything (re-read state with GETs), a
 * `{"kind":"ping"}` every 30 s of silence, and `{"kind":"overflow"}` before the server ends a stream
 * whose client reads too slowly (10,000 lines behind). Delete events carry only the identifying fields.
 * `?since=R` (R from a snapshot, or the last line a broken stream delivered): after hello, the lines
 * with revision > R that happened before the request (from one bounded ring per agent, event-log.ts),
 * then the live ones: no line lost or doubled. When they are no longer all held (or R is ahead of
 * this agent), a `resync` line instead: read a snapshot again.
 */
import type { EventEmitter } from 'node:events';
import type { ClusterViewEvents, WatchedEvent } from '../registry/cluster-view.js';
import { AsyncQueue } from '../lib/queue.js';
import { metricsText } from '../lib/metrics.js';
import {
  KEYS,
  type JobRecord,
  type MachineRecord,
  type ScheduleRecord,
  type UnitStateRecord,
} from '../registry/types.js';
import { HttpError, decodeSegment, methodNotAllowed, type ApiRequest, type ApiResponse } from './http.js';
import { EventLog } from './event-log.js';
import type { ApiMachine } from './fleet-v1.js';
import { parseMetadataKv } from './machine-metadata.js';
import { viewMachines, viewSnapshot, type SnapshotView } from './snapshot.js';
import type { UnitLogs } from './unit-logs.js';

/** What the events stream needs of the cluster view. */
export interface EventSource extends EventEmitter<ClusterViewEvents> {
  readonly revision: number;
  readonly available: boolean;
}

/** A cluster view that can also serve GET /flotilla/v1/snapshot (ClusterView). */
export type ViewSource = EventSource & Partial<SnapshotView>;

export interface FlotillaV1Deps {
  machineID: string;
  view?: ViewSource;
  /** Machines with their effective metadata (FleetV1.machines); absent: the view's records. */
  machines?: () => Promise<ApiMachine[]>;
  logs?: UnitLogs;
  /** Silence after which a ping line is sent; default 30 s. */
  pingMs?: number;
  /** This agent's subsystems' status (GET /flotilla/v1/status); absent: 503. */
  status?: () => Record<string, unknown>;
  /** Lines a client may fall behind before its stream is ended; default 10,000. */
  maxBacklog?: number;
  /** Lines kept for `?since=R` resumption (all clients together); default 10,000. */
  replayLines?: number;
}

function parse<T>(value: string): T | undefined {
  try {
    return JSON.parse(value) as T;
  } catch {
    return undefined;
  }
}

/** One registry change as an event object, or undefined for keys that are not reported. */
export function describeEvent(revision: number, e: WatchedEvent): Record<string, unknown> | undefined {
  const k = e.kv.key;
  const put = e.type === 'put';
  const base = { revision, action: put ? 'put' : 'delete' };
  if (k.startsWith(KEYS.prefixes.job)) {
    const name = k.slice(KEYS.prefixes.job.length);
    const j = put ? parse<JobRecord>(e.kv.value) : undefined;
    return { ...base, kind: 'unit', name, ...(j ? { desiredState: j.desiredState, hash: j.hash } : {}) };
  }
  if (k.startsWith(KEYS.prefixes.schedule)) {
    const name = k.slice(KEYS.prefixes.schedule.length);
    const s = put ? parse<ScheduleRecord>(e.kv.value) : undefined;
    return {
      ...base,
      kind: 'schedule',
      name,
      ...(s?.machineID ? { machineID: s.machineID } : {}),
      ...(s?.reason && !s.machineID ? { reason: s.reason } : {}),
    };
  }
  if (k.startsWith(KEYS.prefixes.state)) {
    const rest = k.slice(KEYS.prefixes.state.length);
    const slash = rest.lastIndexOf('/');
    const st = put ? parse<UnitStateRecord>(e.kv.value) : undefined;
    return {
      ...base,
      kind: 'state',
      name: rest.slice(0, slash),
      machineID: rest.slice(slash + 1),
      ...(st
        ? {
            hash: st.hash,
            systemdLoadState: st.loadState,
            systemdActiveState: st.activeState,
            systemdSubState: st.subState,
            currentState: st.jobState ?? 'loaded',
          }
        : {}),
    };
  }
  if (k.startsWith(KEYS.prefixes.machine)) {
    const m = put ? parse<MachineRecord>(e.kv.value) : undefined;
    return {
      ...base,
      kind: 'machine',
      id: k.slice(KEYS.prefixes.machine.length),
      ...(m ? { primaryIP: m.publicIP, metadata: m.metadata } : {}),
    };
  }
  if (k === KEYS.leader) {
    const l = put ? parse<{ machineID: string }>(e.kv.value) : undefined;
    return { ...base, kind: 'leader', ...(l ? { machineID: l.machineID } : {}) };
  }
  const md = parseMetadataKv(k, put ? e.kv.value : undefined);
  if (md) {
    return {
      ...base,
      kind: 'metadata',
      machineID: md.machineID,
      key: md.key,
      ...(md.value !== undefined ? { value: md.value } : {}),
    };
  }
  return undefined;
}

const line = (o: unknown) => `${JSON.stringify(o)}\n`;

export class FlotillaV1 {
  /** Recent lines for `?since=R`: one ring for all clients, fed by one listener. */
  private readonly log: EventLog | undefined;

  constructor(private readonly d: FlotillaV1Deps) {
    const view = d.view;
    if (view) {
      const log = new EventLog(view.revision, d.replayLines ?? 10_000);
      this.log = log;
      view.on('batch', (revision, events) => {
        for (const e of events) {
          const o = describeEvent(revision, e);
          if (o) log.push(revision, line(o));
        }
      });
      view.on('resync', (revision) => log.reset(revision));
    }
  }

  /** GET /flotilla/v1/snapshot (snapshot.ts). */
  async snapshot(): Promise<ApiResponse> {
    const view = this.d.view;
    const cut = view?.snap && view.schedulerJobs ? viewSnapshot(view as SnapshotView) : undefined;
    if (!view || !cut) throw new HttpError(503, 'this agent has no cluster view yet');
    // After the cut: machines at a revision ≥ cut.revision (see snapshot.ts).
    const machines = this.d.machines ? await this.d.machines() : viewMachines(view.snap!);
    return {
      status: 200,
      headers: { 'Cache-Control': 'no-store' },
      body: { machineID: this.d.machineID, ...cut, machines },
    };
  }

  /** The events stream; ends when the client goes away (listeners removed, timer stopped). */
  events(req: ApiRequest): ApiResponse {
    const view = this.d.view;
    if (!view) throw new HttpError(503, 'this agent has no cluster view');
    const sinceRaw = req.query.getAll('since');
    if (sinceRaw.length > 1) throw new HttpError(400, 'since: give it once');
    const since = sinceRaw.length ? Number(sinceRaw[0]) : undefined;
    if (since !== undefined && (!/^\d{1,15}$/.test(sinceRaw[0]!) || !Number.isSafeInteger(since)))
      throw new HttpError(400, `since: ${JSON.stringify(sinceRaw[0])} is not a revision (an integer ≥ 0)`);
    const max = this.d.maxBacklog ?? 10_000;
    let ping: NodeJS.Timeout | undefined;
    const cleanup = () => {
      view.off('batch', onBatch);
      view.off('resync', onResync);
      view.off('available', onAvailable);
      clearTimeout(ping);
    };
    const q = new AsyncQueue<string>(cleanup);
    const armPing = () => {
      clearTimeout(ping);
      ping = setTimeout(() => emit({ kind: 'ping', revision: view.revision }), this.d.pingMs ?? 30_000);
      ping.unref();
    };
    const send = (l: string) => {
      if (q.closed) return;
      if (q.size >= max) {
        q.push(line({ kind: 'overflow', revision: view.revision }));
        q.end();
        cleanup();
        return;
      }
      q.push(l);
      armPing();
    };
    const emit = (o: unknown) => send(line(o));
    const onBatch = (revision: number, events: readonly WatchedEvent[]) => {
      for (const e of events) {
        const o = describeEvent(revision, e);
        if (o) emit(o);
      }
    };
    const onResync = (revision: number) => emit({ kind: 'resync', revision });
    const onAvailable = (up: boolean) => emit({ kind: 'available', available: up, revision: view.revision });
    view.on('batch', onBatch);
    view.on('resync', onResync);
    view.on('available', onAvailable);
    emit({ kind: 'hello', revision: view.revision, machineID: this.d.machineID, available: view.available });
    if (since !== undefined) {
      // Synchronous with subscribing above: the replay ends where the live lines begin.
      const replay = this.log?.since(since);
      if (!replay) emit({ kind: 'resync', revision: view.revision });
      else for (const l of replay) send(l);
    }
    const stop = () => {
      cleanup();
      q.end();
    };
    if (req.signal?.aborted) stop();
    req.signal?.addEventListener('abort', stop, { once: true });
    return {
      status: 200,
      headers: { 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-cache' },
      stream: q,
    };
  }

  async route(req: ApiRequest): Promise<ApiResponse | undefined> {
    if (req.path === '/metrics') {
      if (req.method !== 'GET') throw methodNotAllowed(['GET']);
      const { contentType, text } = await metricsText();
      return { status: 200, headers: { 'Content-Type': contentType }, body: text };
    }
    const m = /^\/flotilla\/v1(\/.*)?$/.exec(req.path);
    if (!m) return undefined;
    const rest = m[1] ?? '';
    if (rest === '/events') {
      if (req.method !== 'GET') throw methodNotAllowed(['GET']);
      return this.events(req);
    }
    if (rest === '/snapshot') {
      if (req.method !== 'GET') throw methodNotAllowed(['GET']);
      return this.snapshot();
    }
    if (rest === '/status') {
      if (req.method !== 'GET') throw methodNotAllowed(['GET']);
      if (!this.d.status) throw new HttpError(503, 'this agent does not report its status yet');
      return { status: 200, body: { machineID: this.d.machineID, subsystems: this.d.status() } };
    }
    const u = /^\/units\/([^/]+)\/(status|journal)$/.exec(rest);
    if (u) {
      if (req.method !== 'GET') throw methodNotAllowed(['GET']);
      if (!this.d.logs) throw new HttpError(503, 'this agent does not serve unit status or journals');
      const name = decodeSegment(u[1]!);
      return u[2] === 'status' ? this.d.logs.status(name, req) : this.d.logs.journal(name, req);
    }
    throw new HttpError(404, 'not found');
  }
}
