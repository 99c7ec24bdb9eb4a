/**
 * Registry: the typed view of the cluster's state (src/registry/types.ts) over a KvStore. The same
 * class serves both backends, so their semantics cannot drift apart; only the store differs.
 *
 * INVARIANTS
 *   - Every change that touches more than one key is one txn guarded by compares: no lost update
 *     (read-modify-write compares the modRevision it read), no partial write.
 *   - Unit bodies are content-addressed: `unit/<sha1(body)>`; a job always points at a body that
 *     exists (both are written in the same txn).
 *   - Engine writes (schedule/*) carry a LeaderGuard and only apply while that lease still holds the
 *     leader key at the same modRevision, so a deposed leader cannot write.
 *   - Machine presence and unit states are bound to the machine's lease: when the lease expires, they
 *     disappear together.
 */
import { createHash } from 'node:crypto';
import { FlotillaError } from '../lib/errors.js';
import {
  cmp,
  op,
  type KeyValue,
  type KvStore,
  type Op,
  type Txn,
  type Watch,
  type WatchOptions,
} from './kv.js';
import {
  KEYS,
  isDesiredState,
  isServiceName,
  type DesiredState,
  type JobRecord,
  type LeaderRecord,
  type MachineRecord,
  type ScheduleRecord,
  type ServiceEndpointRecord,
  type UnitBody,
  type UnitStateRecord,
} from './types.js';

/** A registered service endpoint with its key's revisions (for etcd-v2-shaped reads). */
export interface EndpointEntry {
  key: string;
  record: ServiceEndpointRecord;
  createRevision: number;
  modRevision: number;
  lease: string;
}

/** Proof of engine leadership: the leader key was written at `modRevision` with `lease`. */
export interface LeaderGuard {
  machineID: string;
  lease: string;
  modRevision: number;
}

export interface Snapshot {
  revision: number;
  jobs: Map<string, JobRecord>;
  schedules: Map<string, ScheduleRecord>;
  machines: Map<string, MachineRecord>;
  /** name → machineID → state */
  states: Map<string, Map<string, UnitStateRecord>>;
  leader?: LeaderRecord;
  /** Unit bodies by hash (only with `snapshot({ bodies: true })`). */
  bodies: Map<string, string>;
}

const MAX_RETRIES = 16;
/** Ops per txn; etcd refuses more than --max-txn-ops (default 128) compares or ops. */
const TXN_CHUNK = 100;
/** Guarded schedule txns in flight at once (see guardedChunks). */
const TXN_PIPELINE = 32;

export function sha1(body: string): string {
  return createHash('sha1').update(body, 'utf8').digest('hex');
}

function parse<T>(kv: KeyValue): T {
  try {
    return JSON.parse(kv.value) as T;
  } catch {
    throw new FlotillaError('E_REGISTRY_CORRUPT', `registry key ${kv.key} does not hold JSON`, {
      key: kv.key,
    });
  }
}

function checkEndpoint(rec: ServiceEndpointRecord): void {
  if (!isServiceName(rec.service)) {
    throw new FlotillaError('E_SERVICE_SPEC', `invalid service name ${JSON.stringify(rec.service)}`, {
      field: 'service',
    });
  }
  if (!Number.isInteger(rec.port) || rec.port < 1 || rec.port > 65535) {
    throw new FlotillaError('E_SERVICE_SPEC', `service ${rec.service}: invalid port ${rec.port}`, {
      field: 'port',
    });
  }
  if (!rec.machineID || rec.machineID.includes('/')) {
    throw new FlotillaError('E_SERVICE_SPEC', `service ${rec.service}: invalid machine ID`, {
      field: 'machineID',
    });
  }
}

export class Registry {
  constructor(readonly store: KvStore) {}

  // ---- units ---------------------------------------------------------------------------------

  /**
   * Create a unit: its body (normalised unit file text) and its job record, atomically.
   * Throws E_CONFLICT when a unit of that name exists already.
   */
  async createUnit(name: string, body: string, desiredState: DesiredState = 'inactive'): Promise<JobRecord> {
    if (!isDesiredState(desiredState)) {
      throw new FlotillaError('E_UNIT_OPTIONS', `invalid desired state ${JSON.stringify(desiredState)}`, {
        field: 'desiredState',
      });
    }
    const hash = sha1(body);
    const job: JobRecord = { name, hash, desiredState };
    const res = await this.store.txn({
      compare: [cmp.absent(KEYS.job(name))],
      success: [
        op.put(KEYS.unitBody(hash), JSON.stringify({ hash, body } satisfies UnitBody)),
        op.put(KEYS.job(name), JSON.stringify(job)),
      ],
    });
    if (!res.succeeded) throw new FlotillaError('E_CONFLICT', `unit ${name} already exists`, { unit: name });
    return job;
  }

  /**
   * Replace a unit's body (fleet's PUT with new options): the job points at the new body and its
   * desired state is set to `desiredState`. Guarded by the job's modRevision; retried on races.
   */
  async replaceUnit(name: string, body: string, desiredState: DesiredState): Promise<JobRecord> {
    const hash = sha1(body);
    return this.updateJob(name, () => ({ name, hash, desiredState }), [
      op.put(KEYS.unitBody(hash), JSON.stringify({ hash, body } satisfies UnitBody)),
    ]);
  }

  async setDesiredState(name: string, desiredState: DesiredState): Promise<JobRecord> {
    if (!isDesiredState(desiredState)) {
      throw new FlotillaError('E_UNIT_OPTIONS', `invalid desired state ${JSON.stringify(desiredState)}`, {
        field: 'desiredState',
      });
    }
    return this.updateJob(name, (j) => ({ ...j, desiredState }));
  }

  private async updateJob(
    name: string,
    change: (j: JobRecord) => JobRecord,
    extra: Op[] = [],
  ): Promise<JobRecord> {
    for (let i = 0; i < MAX_RETRIES; i++) {
      const kv = await this.store.get(KEYS.job(name));
      if (!kv) throw new FlotillaError('E_NOT_FOUND', `unit ${name} not found`, { unit: name });
      const next = change(parse<JobRecord>(kv));
      const res = await this.store.txn({
        compare: [cmp.modRev(KEYS.job(name), kv.modRevision)],
        success: [...extra, op.put(KEYS.job(name), JSON.stringify(next))],
      });
      if (res.succeeded) return next;
    }
    throw new FlotillaError(
      'E_CONFLICT',
      `unit ${name} kept changing; gave up after ${MAX_RETRIES} attempts`,
    );
  }

  /**
   * Destroy a unit: its job, schedule and reported states go in one txn. The body is removed too
   * unless another job still uses the same content. Returns false when there was no such unit.
   */
  async destroyUnit(name: string): Promise<boolean> {
    for (let i = 0; i < MAX_RETRIES; i++) {
      const jobKv = await this.store.get(KEYS.job(name));
      if (!jobKv) return false;
      const job = parse<JobRecord>(jobKv);
      const snap = await this.store.txn({
        compare: [],
        success: [op.get(KEYS.unitBody(job.hash)), op.get(KEYS.prefixes.job, true)],
      });
      const [bodyRes, jobsRes] = snap.results;
      const bodyKv = bodyRes?.type === 'get' ? bodyRes.kvs[0] : undefined;
      const shared =
        jobsRes?.type === 'get' &&
        jobsRes.kvs.some((kv) => kv.key !== jobKv.key && parse<JobRecord>(kv).hash === job.hash);
      const ops: Op[] = [
        op.del(KEYS.job(name)),
        op.del(KEYS.schedule(name)),
        op.del(KEYS.statesOf(name), true),
      ];
      const compare = [cmp.modRev(KEYS.job(name), jobKv.modRevision)];
      if (!shared && bodyKv) {
        // Every writer of a job re-puts its body, so an unchanged body modRevision proves that no
        // other job started using it since we looked.
        ops.push(op.del(KEYS.unitBody(job.hash)));
        compare.push(cmp.modRev(bodyKv.key, bodyKv.modRevision));
      }
      const res = await this.store.txn({ compare, success: ops });
      if (res.succeeded) return true;
    }
    throw new FlotillaError(
      'E_CONFLICT',
      `unit ${name} kept changing; gave up after ${MAX_RETRIES} attempts`,
    );
  }

  async getJob(name: string): Promise<JobRecord | undefined> {
    const kv = await this.store.get(KEYS.job(name));
    return kv ? parse<JobRecord>(kv) : undefined;
  }

  async getBody(hash: string): Promise<UnitBody | undefined> {
    const kv = await this.store.get(KEYS.unitBody(hash));
    return kv ? parse<UnitBody>(kv) : undefined;
  }

  /** A unit with its body, read atomically. */
  async getUnit(name: string): Promise<{ job: JobRecord; body: string } | undefined> {
    const job = await this.getJob(name);
    if (!job) return undefined;
    const body = await this.getBody(job.hash);
    if (!body) {
      throw new FlotillaError('E_REGISTRY_CORRUPT', `unit ${name} points at missing body ${job.hash}`, {
        unit: name,
      });
    }
    return { job, body: body.body };
  }

  /** Every job with its body, read at one revision (bodies are shared between jobs by hash). */
  async listUnits(): Promise<{ revision: number; units: { job: JobRecord; body: string | undefined }[] }> {
    const res = await this.store.txn({
      compare: [],
      success: [op.get(KEYS.prefixes.job, true), op.get(KEYS.prefixes.unitBody, true)],
    });
    const [jobs, bodies] = res.results;
    const byHash = new Map<string, string>();
    for (const kv of bodies?.type === 'get' ? bodies.kvs : []) {
      byHash.set(kv.key.slice(KEYS.prefixes.unitBody.length), parse<UnitBody>(kv).body);
    }
    const units = (jobs?.type === 'get' ? jobs.kvs : []).map((kv) => {
      const job = parse<JobRecord>(kv);
      return { job, body: byHash.get(job.hash) };
    });
    return { revision: res.revision, units };
  }

  async listJobs(): Promise<JobRecord[]> {
    const { kvs } = await this.store.range(KEYS.prefixes.job);
    return kvs.map((kv) => parse<JobRecord>(kv));
  }

  // ---- machines ------------------------------------------------------------------------------

  /**
   * Announce a machine, bound to `lease`. Refused with E_CONFLICT when another lease (another
   * agent with the same machine ID) holds the key.
   */
  async registerMachine(machine: MachineRecord, lease: string): Promise<void> {
    const key = KEYS.machine(machine.id);
    const value = JSON.stringify({ ...machine, lease });
    const res = await this.store.txn({
      compare: [cmp.absent(key)],
      success: [op.put(key, value, lease)],
      failure: [op.get(key)],
    });
    if (res.succeeded) return;
    const existing = res.results[0]?.type === 'get' ? res.results[0].kvs[0] : undefined;
    if (existing && existing.lease === lease) {
      // Our own registration: refresh the record under the same lease. A drain in progress
      // (`unschedulable`, set by src/locksmith/) survives a refresh that does not mention it.
      const was = parse<MachineRecord>(existing);
      const fresh =
        was.unschedulable === true && machine.unschedulable === undefined
          ? JSON.stringify({ ...machine, lease, unschedulable: true })
          : value;
      const upd = await this.store.txn({
        compare: [cmp.modRev(key, existing.modRevision)],
        success: [op.put(key, fresh, lease)],
      });
      if (upd.succeeded) return;
    }
    throw new FlotillaError(
      'E_CONFLICT',
      `machine ID ${machine.id} is already registered by another agent (lease ${existing?.lease ?? '?'}); ` +
        'two machines must not share /etc/machine-id',
      { machineID: machine.id },
    );
  }

  /**
   * Remove a machine that peers found silent (liveness.ts): delete its machine key, then revoke its
   * lease (its unit states go with it). The delete is a txn that also checks that the *caller's*
   * own registration is still current and the victim is still registered under the lease that was
   * judged, so a request held up by a partition and delivered after the heal does nothing (the
   * cut-off caller has lost its own lease by then). Returns false when the guard failed.
   */
  async evictMachine(
    victim: { id: string; lease: string },
    by: { id: string; lease: string },
  ): Promise<boolean> {
    const res = await this.store.txn({
      compare: [
        { key: KEYS.machine(by.id), target: 'lease', op: '=', value: by.lease },
        { key: KEYS.machine(victim.id), target: 'lease', op: '=', value: victim.lease },
      ],
      success: [op.del(KEYS.machine(victim.id))],
    });
    if (!res.succeeded) return false;
    await this.store.revokeLease(victim.lease).catch(() => undefined); // expires by itself otherwise
    return true;
  }

  async listMachines(): Promise<MachineRecord[]> {
    const { kvs } = await this.store.range(KEYS.prefixes.machine);
    return kvs.map((kv) => parse<MachineRecord>(kv));
  }

  // ---- unit states ---------------------------------------------------------------------------

  async reportUnitState(state: UnitStateRecord, lease: string): Promise<void> {
    await this.store.put(KEYS.state(state.name, state.machineID), JSON.stringify(state), { lease });
  }

  /**
   * Publish many states of one machine and delete others, in txns of TXN_CHUNK ops (an agent that
   * starts 300 units publishes them in 3 round trips, not 300). Throws E_LEASE_NOT_FOUND like put.
   */
  async reportUnitStates(
    machineID: string,
    states: readonly UnitStateRecord[],
    cleared: readonly string[],
    lease: string,
  ): Promise<void> {
    const ops: Op[] = [
      ...states.map((s) => op.put(KEYS.state(s.name, machineID), JSON.stringify(s), lease)),
      ...cleared.map((n) => op.del(KEYS.state(n, machineID))),
    ];
    for (let i = 0; i < ops.length; i += TXN_CHUNK) {
      await this.store.txn({ compare: [], success: ops.slice(i, i + TXN_CHUNK) });
    }
  }

  async clearUnitState(name: string, machineID: string): Promise<void> {
    await this.store.delete(KEYS.state(name, machineID));
  }

  async listUnitStates(): Promise<UnitStateRecord[]> {
    const { kvs } = await this.store.range(KEYS.prefixes.state);
    return kvs.map((kv) => parse<UnitStateRecord>(kv));
  }

  // ---- engine leadership and scheduling ------------------------------------------------------

  /**
   * Try to become the engine leader with `lease`. Returns a guard when this machine holds the
   * leader key (newly or already), undefined when another machine does.
   */
  async acquireLeadership(machineID: string, lease: string): Promise<LeaderGuard | undefined> {
    const value = JSON.stringify({ machineID } satisfies LeaderRecord);
    const res = await this.store.txn({
      compare: [cmp.absent(KEYS.leader)],
      success: [op.put(KEYS.leader, value, lease), op.get(KEYS.leader)],
      failure: [op.get(KEYS.leader)],
    });
    const got = res.results[res.succeeded ? 1 : 0];
    const kv = got?.type === 'get' ? got.kvs[0] : undefined;
    if (!kv || kv.lease !== lease) return undefined;
    return { machineID, lease, modRevision: kv.modRevision };
  }

  async getLeader(): Promise<LeaderRecord | undefined> {
    const kv = await this.store.get(KEYS.leader);
    return kv ? parse<LeaderRecord>(kv) : undefined;
  }

  /** Give up leadership (only if still ours). */
  async resignLeadership(guard: LeaderGuard): Promise<void> {
    await this.store.txn({
      compare: [cmp.modRev(KEYS.leader, guard.modRevision)],
      success: [op.del(KEYS.leader)],
    });
  }

  /**
   * Write scheduling decisions only while `guard` still holds leadership and each unit still exists.
   * Decisions go in txns of at most TXN_CHUNK (etcd's default --max-txn-ops is 128); each txn is
   * all-or-nothing. Returns false when leadership was lost or a unit vanished (re-plan).
   */
  async writeSchedule(guard: LeaderGuard, decisions: ScheduleRecord[]): Promise<boolean> {
    return this.guardedChunks(decisions, (chunk) => ({
      compare: [
        cmp.modRev(KEYS.leader, guard.modRevision),
        ...chunk.map((d) => cmp.present(KEYS.job(d.name))),
      ],
      success: chunk.map((d) => op.put(KEYS.schedule(d.name), JSON.stringify(d))),
    }));
  }

  /** Remove placements (e.g. units whose machine died), guarded and chunked like writeSchedule. */
  async clearSchedule(guard: LeaderGuard, names: string[]): Promise<boolean> {
    return this.guardedChunks(names, (chunk) => ({
      compare: [cmp.modRev(KEYS.leader, guard.modRevision)],
      success: chunk.map((n) => op.del(KEYS.schedule(n))),
    }));
  }

  /**
   * Run `items` as guarded txns of TXN_CHUNK ops, up to TXN_PIPELINE of them in flight. The chunks
   * touch disjoint keys and each one carries the full guard, so their order does not matter; one
   * lost guard makes the result false (the caller re-plans from fresh state, and every chunk is
   * idempotent). Sequential chunks spent most of their time waiting for etcd's fsync round trip.
   */
  private async guardedChunks<T>(items: readonly T[], txn: (chunk: T[]) => Txn): Promise<boolean> {
    let next = 0;
    let ok = true;
    const worker = async (): Promise<void> => {
      while (ok && next < items.length) {
        const chunk = items.slice(next, next + TXN_CHUNK);
        next += TXN_CHUNK;
        try {
          if (!(await this.store.txn(txn(chunk))).succeeded) ok = false;
        } catch (err) {
          ok = false; // the other workers stop at their next chunk; the error is the result
          throw err;
        }
      }
    };
    const workers = Math.min(TXN_PIPELINE, Math.ceil(items.length / TXN_CHUNK));
    await Promise.all(Array.from({ length: workers }, worker));
    return ok;
  }

  async getSchedule(name: string): Promise<ScheduleRecord | undefined> {
    const kv = await this.store.get(KEYS.schedule(name));
    return kv ? parse<ScheduleRecord>(kv) : undefined;
  }

  /** The states every machine reports for one unit. */
  async unitStatesOf(name: string): Promise<UnitStateRecord[]> {
    const { kvs } = await this.store.range(KEYS.statesOf(name));
    return kvs.map((kv) => parse<UnitStateRecord>(kv));
  }

  async listSchedules(): Promise<ScheduleRecord[]> {
    const { kvs } = await this.store.range(KEYS.prefixes.schedule);
    return kvs.map((kv) => parse<ScheduleRecord>(kv));
  }

  // ---- service endpoints (discovery) -------------------------------------------------------

  /**
   * Register (or refresh) service endpoints and remove others, bound to `lease` (the machine's
   * presence lease, so they vanish with the machine), in txns of at most TXN_CHUNK ops.
   */
  async applyEndpoints(
    lease: string,
    change: {
      put?: ServiceEndpointRecord[];
      remove?: { service: string; machineID: string; port: number }[];
    },
  ): Promise<void> {
    const ops: Op[] = [];
    for (const rec of change.put ?? []) {
      checkEndpoint(rec);
      ops.push(op.put(KEYS.endpoint(rec.service, rec.machineID, rec.port), JSON.stringify(rec), lease));
    }
    for (const r of change.remove ?? []) ops.push(op.del(KEYS.endpoint(r.service, r.machineID, r.port)));
    for (let i = 0; i < ops.length; i += TXN_CHUNK) {
      await this.store.txn({ compare: [], success: ops.slice(i, i + TXN_CHUNK) });
    }
  }

  async registerEndpoint(rec: ServiceEndpointRecord, lease: string): Promise<void> {
    await this.applyEndpoints(lease, { put: [rec] });
  }

  async deregisterEndpoint(service: string, machineID: string, port: number): Promise<boolean> {
    const { deleted } = await this.store.delete(KEYS.endpoint(service, machineID, port));
    return deleted > 0;
  }

  /** Every endpoint (or those of one service), read at one revision, sorted by key. */
  async listEndpoints(service?: string): Promise<{ revision: number; entries: EndpointEntry[] }> {
    if (service !== undefined && !isServiceName(service)) {
      throw new FlotillaError('E_SERVICE_SPEC', `invalid service name ${JSON.stringify(service)}`, {
        field: 'service',
      });
    }
    const { kvs, revision } = await this.store.range(
      service === undefined ? KEYS.prefixes.service : KEYS.endpointsOf(service),
    );
    const entries = kvs.map((kv) => ({
      key: kv.key,
      record: parse<ServiceEndpointRecord>(kv),
      createRevision: kv.createRevision,
      modRevision: kv.modRevision,
      lease: kv.lease,
    }));
    entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { revision, entries };
  }

  // ---- whole-state reads and watches ---------------------------------------------------------

  /** Everything but the bodies, read at one revision. Watch from `revision + 1` to follow it. */
  async snapshot(opts: { bodies?: boolean } = {}): Promise<Snapshot> {
    const res = await this.store.txn({
      compare: [],
      success: [
        op.get(KEYS.prefixes.job, true),
        op.get(KEYS.prefixes.schedule, true),
        op.get(KEYS.prefixes.machine, true),
        op.get(KEYS.prefixes.state, true),
        op.get(KEYS.leader),
        ...(opts.bodies ? [op.get(KEYS.prefixes.unitBody, true)] : []),
      ],
    });
    const kvs = (i: number) => {
      const r = res.results[i];
      return r?.type === 'get' ? r.kvs : [];
    };
    const snap: Snapshot = {
      revision: res.revision,
      jobs: new Map(kvs(0).map((kv) => [kv.key.slice(KEYS.prefixes.job.length), parse<JobRecord>(kv)])),
      schedules: new Map(
        kvs(1).map((kv) => [kv.key.slice(KEYS.prefixes.schedule.length), parse<ScheduleRecord>(kv)]),
      ),
      machines: new Map(
        kvs(2).map((kv) => [kv.key.slice(KEYS.prefixes.machine.length), parse<MachineRecord>(kv)]),
      ),
      states: new Map(),
      bodies: new Map(
        kvs(5).map((kv) => [kv.key.slice(KEYS.prefixes.unitBody.length), parse<UnitBody>(kv).body]),
      ),
    };
    for (const kv of kvs(3)) {
      const s = parse<UnitStateRecord>(kv);
      let m = snap.states.get(s.name);
      if (!m) snap.states.set(s.name, (m = new Map<string, UnitStateRecord>()));
      m.set(s.machineID, s);
    }
    const leader = kvs(4)[0];
    if (leader) snap.leader = parse<LeaderRecord>(leader);
    return snap;
  }

  /** Watch every registry change (or those under `prefix`, a KEYS.prefixes value). */
  watch(opts: WatchOptions & { prefix?: string } = {}): Watch {
    const { prefix = '', ...rest } = opts;
    return this.store.watch(prefix, rest);
  }

  /** Delete unit bodies no job points at (left behind by crashes of older versions, or replaceUnit). */
  async gcBodies(): Promise<number> {
    const snap = await this.store.txn({
      compare: [],
      success: [op.get(KEYS.prefixes.job, true), op.get(KEYS.prefixes.unitBody, true)],
    });
    const [jobs, bodies] = snap.results;
    if (jobs?.type !== 'get' || bodies?.type !== 'get') return 0;
    const used = new Set(jobs.kvs.map((kv) => parse<JobRecord>(kv).hash));
    const unused = bodies.kvs.filter((kv) => !used.has(kv.key.slice(KEYS.prefixes.unitBody.length)));
    let removed = 0;
    for (let i = 0; i < unused.length; i += TXN_CHUNK) {
      const chunk = unused.slice(i, i + TXN_CHUNK);
      // A body that gained a user since the read was re-put by that writer: its modRevision moved.
      const res = await this.store.txn({
        compare: chunk.map((kv) => cmp.modRev(kv.key, kv.modRevision)),
        success: chunk.map((kv) => op.del(kv.key)),
      });
      if (res.succeeded) removed += chunk.length;
    }
    return removed;
  }
}
