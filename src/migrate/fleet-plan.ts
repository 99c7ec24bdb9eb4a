/**
 * migrate-from-fleet, the pure part: fleet's etcd v2 keys (as read, flattened) + the units flotilla
 * already has → what to import and what cannot be carried over, each with its reason.
 *
 * fleet's layout under its prefix (default /_coreos.com/fleet/):
 *   job/<unit>/object         {"Name":"a.service","UnitHash":[20 byte values]}   → imported
 *   job/<unit>/target-state   inactive | loaded | launched                       → desired state
 *   unit/<sha1>               {"Raw":"[Unit]\n…"}                                 → the unit's contents
 *   machines/<id>/metadata/<k> dynamic metadata (fleetctl/API PATCH); "" masks   → PATCHed as is
 *   job/<unit>/target, job/<unit>/job-state    the schedule and its heartbeat    → not carried (the engine places again)
 *   machines/<id>/object      presence with the metadata from that machine's fleet.conf → not carried (per-machine config)
 *   states/…, state/…         published unit states (TTL)                       → not carried (agents republish)
 *   lease/engine-leader, engine/version  fleet's own engine                      → not carried
 *   unit/<sha1> no job uses   fleet never garbage-collected contents             → not carried
 *
 * Malformed fleet data (a job object that is not fleet's JSON, a content key that is missing or does
 * not hash to its name, a bad target-state) is collected, all of it, into one E_MIGRATE naming each
 * key, before anything is written.
 */
import { FlotillaError } from '../lib/errors.js';
import { UnitFile, validateUnitName, type UnitOption } from '../unit/index.js';

export type DesiredState = 'inactive' | 'loaded' | 'launched';

export interface FleetKey {
  /** Key relative to the prefix, e.g. `job/hello.service/object`. */
  key: string;
  value: string;
}

export interface ImportUnit {
  name: string;
  options: UnitOption[];
  desiredState: DesiredState;
  hash: string;
  /** flotilla has the unit already with these contents: only its desired state changes. */
  exists: boolean;
}

export interface MetadataOp {
  machineID: string;
  key: string;
  /** undefined = fleet's "" mask: remove the key. */
  value: string | undefined;
}

export interface NotCarried {
  /** The fleet key (relative to the prefix) or key group, e.g. `job/a.service/target`. */
  key: string;
  why: string;
}

export interface MigrationPlan {
  units: ImportUnit[];
  /** Units flotilla already has with the same contents (their desired state is set if it differs). */
  unchanged: string[];
  metadata: MetadataOp[];
  notCarried: NotCarried[];
}

/** What flotilla's registry holds already: unit name → hash and desired state. */
export type ExistingUnits = ReadonlyMap<string, { hash: string; desiredState: DesiredState }>;

const STATES = new Set<string>(['inactive', 'loaded', 'launched']);
const META_KEY = /^[A-Za-z0-9_.-]+$/;
const MACHINE_ID = /^[0-9a-f]{32}$/;

interface Job {
  object?: string;
  targetState?: string;
  target?: string;
  jobState?: string;
  other: string[];
}

function parseJson(value: string): unknown {
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return undefined;
  }
}

function hashHex(h: unknown): string | undefined {
  if (!Array.isArray(h) || h.length !== 20) return undefined;
  if (!h.every((b) => Number.isInteger(b) && (b as number) >= 0 && (b as number) <= 255)) return undefined;
  return Buffer.from(h as number[]).toString('hex');
}

export function planMigration(keys: readonly FleetKey[], existing: ExistingUnits): MigrationPlan {
  const bad: string[] = [];
  const notCarried: NotCarried[] = [];
  const jobs = new Map<string, Job>();
  const contents = new Map<string, string>();
  const metadata: MetadataOp[] = [];
  const machines: { id: string; value: string }[] = [];
  const states = new Map<string, number>();

  for (const { key, value } of keys) {
    const parts = key.split('/');
    const [top] = parts;
    if (top === 'job' && parts.length === 3) {
      const job = jobs.get(parts[1]!) ?? { other: [] };
      jobs.set(parts[1]!, job);
      const leaf = parts[2]!;
      if (leaf === 'object') job.object = value;
      else if (leaf === 'target-state') job.targetState = value;
      else if (leaf === 'target') job.target = value;
      else if (leaf === 'job-state') job.jobState = value;
      else job.other.push(key);
    } else if (top === 'unit' && parts.length === 2) {
      contents.set(parts[1]!, value);
    } else if (top === 'machines' && parts.length === 4 && parts[2] === 'metadata') {
      const [, id, , k] = parts as [string, string, string, string];
      if (!MACHINE_ID.test(id)) bad.push(`${key}: machine ID ${id} is not 32 hex digits`);
      else if (!META_KEY.test(k))
        notCarried.push({ key, why: `metadata key ${k} has characters flotilla refuses` });
      else metadata.push({ machineID: id, key: k, value: value === '' ? undefined : value });
    } else if (top === 'machines' && parts.length === 3 && parts[2] === 'object') {
      machines.push({ id: parts[1]!, value });
    } else if ((top === 'states' && parts.length === 3) || (top === 'state' && parts.length === 2)) {
      states.set(parts[1]!, (states.get(parts[1]!) ?? 0) + 1);
    } else if (key === 'lease/engine-leader' || key === 'engine/version') {
      notCarried.push({ key, why: "fleet's engine bookkeeping: flotilla's engine elects its own leader" });
    } else {
      notCarried.push({ key, why: 'not a key of fleet 1.0 that flotilla knows' });
    }
  }

  const units: ImportUnit[] = [];
  const unchanged: string[] = [];
  const used = new Set<string>();
  for (const [name, job] of [...jobs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const at = `job/${name}`;
    for (const k of job.other) notCarried.push({ key: k, why: 'unknown key of a job' });
    if (job.object === undefined) {
      // fleet writes object first and deletes the whole directory on destroy: leftovers of a destroy.
      notCarried.push({ key: `${at}/`, why: 'job without an object key (a destroy in progress?)' });
      continue;
    }
    const obj = parseJson(job.object) as { Name?: unknown; UnitHash?: unknown } | undefined;
    const hash = obj && typeof obj === 'object' ? hashHex(obj.UnitHash) : undefined;
    if (!obj || typeof obj !== 'object' || hash === undefined) {
      bad.push(`${at}/object: not fleet's {"Name":…,"UnitHash":[20 bytes]}`);
      continue;
    }
    if (obj.Name !== name) {
      bad.push(`${at}/object: Name ${JSON.stringify(obj.Name)} is not the job's name ${name}`);
      continue;
    }
    const desired = job.targetState ?? 'inactive';
    if (!STATES.has(desired)) {
      bad.push(`${at}/target-state: ${JSON.stringify(desired)} is not inactive, loaded or launched`);
      continue;
    }
    used.add(hash);
    const raw = contents.get(hash);
    if (raw === undefined) {
      bad.push(`${at}/object: its contents unit/${hash} are missing`);
      continue;
    }
    const content = parseJson(raw) as { Raw?: unknown } | undefined;
    if (!content || typeof content !== 'object' || typeof content.Raw !== 'string') {
      bad.push(`unit/${hash}: not fleet's {"Raw":"…"}`);
      continue;
    }
    try {
      validateUnitName(name);
    } catch (err) {
      notCarried.push({ key: `${at}/`, why: `flotilla refuses the name: ${(err as Error).message}` });
      continue;
    }
    let file: UnitFile;
    try {
      file = UnitFile.parse(content.Raw);
    } catch (err) {
      notCarried.push({
        key: `unit/${hash}`,
        why: `${name}: flotilla cannot parse it: ${(err as Error).message}`,
      });
      continue;
    }
    if (file.hash() !== hash) {
      bad.push(`unit/${hash}: its contents hash to ${file.hash()}, not to the key`);
      continue;
    }
    if (job.target !== undefined)
      notCarried.push({
        key: `${at}/target`,
        why: `schedule (fleet ran it on ${job.target.slice(0, 8)}...): flotilla's engine places it again`,
      });
    const have = existing.get(name);
    if (have && have.hash !== hash) {
      notCarried.push({
        key: `${at}/`,
        why: `flotilla already has ${name} with other contents (hash ${have.hash.slice(0, 7)}, fleet's ${hash.slice(0, 7)}): destroy it in flotilla first to take fleet's`,
      });
      continue;
    }
    if (have && have.desiredState === desired) {
      unchanged.push(name);
      continue;
    }
    units.push({
      name,
      options: file.options.map((o) => ({ section: o.section, name: o.name, value: o.value })),
      desiredState: desired as DesiredState,
      hash,
      exists: have !== undefined,
    });
  }
  const orphans = [...contents.keys()].filter((h) => !used.has(h));
  if (orphans.length)
    notCarried.push({
      key: 'unit/',
      why: `${orphans.length} unit contents no job uses (fleet never removed old contents)`,
    });
  for (const [unit, n] of [...states].sort(([a], [b]) => (a < b ? -1 : 1)))
    notCarried.push({
      key: `states/${unit}`,
      why: `${n} published state record(s): runtime state, flotilla's agents publish their own`,
    });
  for (const m of machines) {
    const obj = parseJson(m.value) as { PublicIP?: unknown; Metadata?: unknown } | undefined;
    const meta =
      obj && typeof obj.Metadata === 'object' && obj.Metadata
        ? Object.entries(obj.Metadata as Record<string, unknown>)
            .map(([k, v]) => `${k}=${String(v)}`)
            .sort()
            .join(',')
        : '';
    const ip = obj && typeof obj.PublicIP === 'string' && obj.PublicIP ? ` (${obj.PublicIP})` : '';
    notCarried.push({
      key: `machines/${m.id}/object`,
      why: `machine ${m.id.slice(0, 8)}...${ip} presence${meta ? ` with metadata ${meta} from its fleet.conf: set metadata=${meta} in its flotilla.conf` : ''}; it joins when its flotilla agent starts`,
    });
  }
  if (bad.length) {
    throw new FlotillaError(
      'E_MIGRATE',
      `fleet's registry has ${bad.length} malformed key(s); nothing was imported:\n  ${bad.join('\n  ')}`,
      { keys: bad },
    );
  }
  return { units, unchanged, metadata, notCarried };
}
