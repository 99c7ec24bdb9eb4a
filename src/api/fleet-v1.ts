/**
 * fleet's HTTP API v1 (`/fleet/v1/…`, alias `/v1-alpha/…`) over the Registry, with fleet's JSON shapes,
 * status codes and error body. Differences from fleet, on purpose:
 *   - a bogus desiredState is a 400 (fleet stored it and then answered 500 forever);
 *   - a unit that cannot be placed carries `reason` (why), which fleet never said.
 * Pagination (`nextPageToken`) follows fleet's token format: base64url(LE uint16 limit, uint16 page).
 * Like fleet (Go `omitempty`), an empty page is `{}`; machines always carry `metadata` (maybe `{}`).
 * `PATCH /fleet/v1/machines` edits dynamic metadata (machine-metadata.ts); `GET /fleet/v1/discovery`
 * serves the discovery document.
 */
import { isCode } from '../lib/errors.js';
import { op } from '../registry/kv.js';
import type { Registry } from '../registry/registry.js';
import {
  KEYS,
  type ContainerStateInfo,
  type MachineRecord,
  type PullStateInfo,
  type UnitStateRecord,
} from '../registry/types.js';
import { checkUnitPut } from './unit-input.js';
import { toApiUnit, type ApiUnit, type StateView } from './unit-view.js';
import { UnitsBatch } from './units-batch.js';
import type { Role } from './roles.js';
import { DISCOVERY } from './discovery.js';
import {
  HttpError,
  decodeJson,
  decodeSegment,
  methodNotAllowed,
  parseJson,
  type ApiRequest,
  type ApiResponse,
} from './http.js';
import {
  METADATA_PREFIX,
  applyMetadataOps,
  groupMetadata,
  mergeMetadata,
  parseMetadataOps,
} from './machine-metadata.js';

export const PAGE_LIMIT = 100;

export type { ApiUnit };
export { currentState } from './unit-view.js';

export interface ApiUnitState {
  name: string;
  hash: string;
  machineID: string;
  systemdLoadState: string;
  systemdActiveState: string;
  systemdSubState: string;
  /** flotilla, container units: why the unit failed or waits; the container; pull progress. */
  reason?: string;
  container?: ContainerStateInfo;
  pull?: PullStateInfo;
}

export interface ApiMachine {
  id: string;
  primaryIP: string;
  metadata: Record<string, string>;
}

export function encodePageToken(limit: number, page: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt16LE(limit, 0);
  b.writeUInt16LE(page, 2);
  return b.toString('base64url').padEnd(8, '=');
}

function pageOf(query: URLSearchParams): number {
  const tokens = query.getAll('nextPageToken');
  if (tokens.length === 0) return 1;
  if (tokens.length > 1) throw new HttpError(400, 'too many values for page token');
  const b = Buffer.from(tokens[0]!, 'base64url');
  if (b.length !== 4) throw new HttpError(400, 'invalid page token');
  if (b.readUInt16LE(0) !== PAGE_LIMIT) throw new HttpError(400, `token limit must be ${PAGE_LIMIT}`);
  const page = b.readUInt16LE(2);
  if (page === 0) throw new HttpError(400, 'token page must be greater than zero');
  return page;
}

function paginate<T, R = T>(
  items: T[],
  query: URLSearchParams,
  field: string,
  map?: (item: T) => R,
): Record<string, unknown> {
  const page = pageOf(query);
  const raw = items.slice((page - 1) * PAGE_LIMIT, page * PAGE_LIMIT);
  // Only the requested page is converted (a unit's options are parsed from its body).
  const slice = map ? raw.map(map) : raw;
  const out: Record<string, unknown> = {};
  if (slice.length > 0) out[field] = slice; // fleet omits an empty list
  // fleet sends a token whenever a page is full, even if nothing follows.
  if (slice.length === PAGE_LIMIT) out.nextPageToken = encodePageToken(PAGE_LIMIT, page + 1);
  return out;
}

/** An RFC 7234 Warning header value: `199 flotilla "text"` (quotes and backslashes escaped, ASCII only). */
export function warningValue(text: string): string {
  const safe = text.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[^\x20-\x7e]/g, '?');
  return `199 flotilla "${safe}"`;
}

export class FleetV1 {
  /** The batch routes (/flotilla/v1/units/get|put|destroy), served with fleet's unit routes. */
  private readonly batch: UnitsBatch;
  constructor(private readonly registry: Registry) {
    this.batch = new UnitsBatch(registry);
  }

  async listUnits(query: URLSearchParams, roles?: ReadonlySet<Role>): Promise<ApiResponse> {
    const [snap, { units }] = await Promise.all([this.registry.snapshot(), this.registry.listUnits()]);
    const sorted = units.sort((a, b) => (a.job.name < b.job.name ? -1 : a.job.name > b.job.name ? 1 : 0));
    return {
      status: 200,
      body: paginate(sorted, query, 'units', (u) => toApiUnit(snap, u.job, u.body, roles)),
    };
  }

  async getUnit(name: string, roles?: ReadonlySet<Role>): Promise<ApiResponse> {
    // Only this unit's keys: the CLI asks for units one by one, so this must not read the cluster.
    const [u, sched, states] = await Promise.all([
      this.registry.getUnit(name),
      this.registry.getSchedule(name),
      this.registry.unitStatesOf(name),
    ]);
    if (!u) throw new HttpError(404, 'unit does not exist');
    const view: StateView = {
      schedules: new Map(sched ? [[name, sched]] : []),
      states: new Map([[name, new Map(states.map((st) => [st.machineID, st]))]]),
    };
    return { status: 200, body: toApiUnit(view, u.job, u.body, roles) };
  }

  async putUnit(name: string, req: ApiRequest): Promise<ApiResponse> {
    const { desired, text, hash, warnings } = checkUnitPut(name, parseJson(req));
    const warningHeaders =
      warnings.length > 0 ? { Warning: warnings.map(warningValue).join(', ') } : undefined;
    const existing = await this.registry.getJob(name);
    if (text !== undefined) {
      if (!existing) {
        try {
          await this.registry.createUnit(name, text, desired ?? 'inactive');
        } catch (err) {
          if (!isCode(err, 'E_CONFLICT')) throw err;
          throw new HttpError(409, `unit ${name} was created concurrently`);
        }
        return { status: 201, ...(warningHeaders && { headers: warningHeaders }) };
      }
      if (hash !== existing.hash) {
        await this.registry.replaceUnit(name, text, desired ?? 'inactive');
        return { status: 201, ...(warningHeaders && { headers: warningHeaders }) };
      }
    } else if (!existing) {
      throw new HttpError(409, 'unit does not exist and options field empty');
    }
    if (desired === undefined) throw new HttpError(409, 'must provide DesiredState to update existing unit');
    await this.registry.setDesiredState(name, desired);
    return { status: 204 };
  }

  async deleteUnit(name: string): Promise<ApiResponse> {
    if (!(await this.registry.destroyUnit(name))) throw new HttpError(404, 'unit does not exist');
    return { status: 204 };
  }

  async listStates(query: URLSearchParams): Promise<ApiResponse> {
    const machine = query.get('machineID');
    const unit = query.get('unitName');
    const all = (await this.registry.listUnitStates())
      .filter((s) => (machine === null || s.machineID === machine) && (unit === null || s.name === unit))
      .sort((a, b) => (a.name === b.name ? (a.machineID < b.machineID ? -1 : 1) : a.name < b.name ? -1 : 1))
      .map(toApiUnitState);
    return { status: 200, body: paginate(all, query, 'states') };
  }

  /** Machines with their effective metadata (configured + dynamic), read at one revision. */
  async machines(): Promise<ApiMachine[]> {
    const res = await this.registry.store.txn({
      compare: [],
      success: [op.get(KEYS.prefixes.machine, true), op.get(METADATA_PREFIX, true)],
    });
    const [recs, meta] = res.results.map((r) => (r?.type === 'get' ? r.kvs : []));
    const dynamic = groupMetadata(meta ?? []);
    return (recs ?? [])
      .map((kv) => JSON.parse(kv.value) as MachineRecord)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((m) => ({
        id: m.id,
        primaryIP: m.publicIP,
        metadata: mergeMetadata(m.metadata, dynamic.get(m.id)),
      }));
  }

  async listMachines(query: URLSearchParams): Promise<ApiResponse> {
    pageOf(query); // a bad token is a 400 before any read
    return { status: 200, body: paginate(await this.machines(), query, 'machines') };
  }

  /** fleet's metadata PATCH: validate every op, then apply them in order; 204 with a JSON Content-Type. */
  async patchMachines(req: ApiRequest): Promise<ApiResponse> {
    const ops = parseMetadataOps(req.body.length === 0 ? null : decodeJson(req));
    await applyMetadataOps(this.registry.store, ops);
    return { status: 204, headers: { 'Content-Type': 'application/json' } };
  }

  /** Route a request under /fleet/v1 or /v1-alpha. Undefined: not ours. */
  async route(req: ApiRequest): Promise<ApiResponse | undefined> {
    const m = /^\/(?:fleet\/v1|v1-alpha)(\/.*)?$/.exec(req.path);
    if (!m) return this.batch.route(req);
    const rest = m[1] ?? '';
    const only = (methods: string[]) => {
      if (!methods.includes(req.method)) throw methodNotAllowed(methods);
    };
    if (rest === '' || rest === '/') throw methodNotAllowed(['GET']);
    if (rest === '/discovery') {
      // fleet answers 400 (not 405) for another method here.
      if (req.method !== 'GET') throw new HttpError(400, 'only HTTP GET supported against this resource');
      return { status: 200, body: DISCOVERY };
    }
    if (rest === '/units') {
      only(['GET']);
      return this.listUnits(req.query, req.roles);
    }
    const unit = /^\/units\/([^/]+)$/.exec(rest);
    if (unit) {
      const name = decodeSegment(unit[1]!);
      only(['GET', 'PUT', 'DELETE']);
      if (req.method === 'GET') return this.getUnit(name, req.roles);
      if (req.method === 'PUT') return this.putUnit(name, req);
      return this.deleteUnit(name);
    }
    if (rest === '/state') {
      only(['GET']);
      return this.listStates(req.query);
    }
    const st = /^\/state\/([^/]+)$/.exec(rest);
    if (st) {
      only(['GET']);
      const name = decodeSegment(st[1]!);
      const r = await this.listStates(new URLSearchParams({ unitName: name }));
      const first = (r.body as { states?: ApiUnitState[] }).states?.[0];
      if (!first) throw new HttpError(404, 'unit state does not exist');
      return { status: 200, body: first };
    }
    if (rest === '/machines') {
      only(['GET', 'PATCH']);
      if (req.method === 'PATCH') return this.patchMachines(req);
      return this.listMachines(req.query);
    }
    throw new HttpError(404, 'not found');
  }
}

/** A unit state record as fleet's v1 API shows it (GET /fleet/v1/state, the dashboard snapshot). */
export function toApiUnitState(
  s: Pick<
    UnitStateRecord,
    'name' | 'machineID' | 'hash' | 'loadState' | 'activeState' | 'subState' | 'reason' | 'container' | 'pull'
  >,
): ApiUnitState {
  return {
    name: s.name,
    hash: s.hash,
    machineID: s.machineID,
    systemdLoadState: s.loadState,
    systemdActiveState: s.activeState,
    systemdSubState: s.subState,
    ...(s.reason !== undefined ? { reason: s.reason } : {}),
    ...(s.container !== undefined ? { container: s.container } : {}),
    ...(s.pull !== undefined ? { pull: s.pull } : {}),
  };
}
