/**
 * list-machines, list-units, list-unit-files: fleetctl's tables (Go tabwriter, TAB padding, upper-case
 * field names as headers, `-` for an empty cell) or, with `-o json`, flotilla's JSON (README,
 * "Migrating from fleetctl"): every field, full IDs and hashes, null for a missing value.
 */
import { clientFromGlobals } from '../client.js';
import { CliExit, UsageError, type Command, type Context, type FlagSpec } from '../command.js';
import {
  byId,
  fleetCall,
  isGlobal,
  listMachines,
  listStates,
  listUnits,
  machineLabel,
  shortId,
} from '../fleet.js';
import { tabwrite } from '../tabwriter.js';

type Row = Record<string, string | undefined>;

export const MACHINE_FIELDS = ['machine', 'ip', 'metadata'] as const;
/** fleetctl's keys plus flotilla's container-unit columns and `reason`. */
export const UNIT_FIELDS = [
  'active',
  'container',
  'hash',
  'health',
  'image',
  'load',
  'machine',
  'reason',
  'sub',
  'unit',
] as const;
/** fleetctl's keys plus flotilla's `reason` (why a unit is not placed). */
export const UNIT_FILE_FIELDS = [
  'desc',
  'dstate',
  'global',
  'hash',
  'reason',
  'state',
  'target',
  'tmachine',
  'unit',
] as const;

function listFlags(valid: readonly string[], defaults: string, shortFull: boolean): Record<string, FlagSpec> {
  const f: Record<string, FlagSpec> = {
    fields: {
      type: 'string',
      default: defaults,
      value: 'FIELDS',
      help: `Columns to print, comma separated. Valid fields are "${valid.join(',')}"`,
    },
    full: { type: 'boolean', default: false, help: 'Do not ellipsize fields on output' },
    'no-legend': { type: 'boolean', default: false, help: 'Do not print a legend (column headers)' },
    output: {
      type: 'string',
      short: 'o',
      default: 'table',
      value: 'FORMAT',
      help: 'table, or json (flotilla: every field, full IDs; --fields does not apply)',
    },
  };
  if (shortFull) f.l = { type: 'boolean', short: 'l', default: false, help: 'Shorthand for --full' };
  return f;
}

function outputFormat(ctx: Context): 'table' | 'json' {
  const o = String(ctx.flags.output ?? 'table');
  if (o !== 'table' && o !== 'json')
    throw new UsageError(`invalid argument ${JSON.stringify(o)} for "--output" flag: table or json`);
  return o;
}

/** fleetctl checks the fields before it asks the API anything. */
function fieldsOf(ctx: Context, valid: readonly string[]): string[] {
  const raw = String(ctx.flags.fields ?? '');
  if (raw === '') throw new CliExit(1, 'Must define output format');
  const cols = raw.split(',');
  for (const c of cols)
    if (!valid.includes(c)) throw new CliExit(1, `Invalid key in output format: ${JSON.stringify(c)}`);
  return cols;
}

function table(ctx: Context, cols: string[], rows: Row[]): number {
  const lines: string[][] = [];
  if (ctx.flags['no-legend'] !== true) lines.push(cols.map((c) => c.toUpperCase()));
  for (const r of rows) lines.push(cols.map((c) => (r[c] === undefined || r[c] === '' ? '-' : r[c])));
  ctx.io.out(tabwrite(lines));
  return 0;
}

function json(ctx: Context, value: unknown): number {
  ctx.io.out(`${JSON.stringify(value, null, 2)}\n`);
  return 0;
}

const full = (ctx: Context) => ctx.flags.full === true || ctx.flags.l === true;
const orNull = (s: string | undefined) => (s === undefined || s === '' ? null : s);

/** fleetctl's formatMetadata: sorted `k=v`, or `k<op>v` when the value starts with a comparison. */
export function formatMetadata(md: Record<string, string>): string {
  return Object.keys(md)
    .sort()
    .map((k) => (/^(<=|>=|!=|==|<|>)/.test(md[k]!) ? `${k}${md[k]}` : `${k}=${md[k]}`))
    .join(',');
}

export const listMachinesCmd: Command = {
  name: 'list-machines',
  summary: 'Enumerate the current hosts in the cluster',
  usage: 'list-machines [-l|--full] [--no-legend] [--fields=machine,ip,metadata] [-o json]',
  description:
    'Lists all active machines within the cluster. Previously active machines will not appear in this list.\n\n' +
    'For easily parsable output, you can remove the column headers:\n\tfleetctl list-machines --no-legend\n\n' +
    'Output the list without truncation:\n\tfleetctl list-machines --full',
  flags: listFlags(MACHINE_FIELDS, 'machine,ip,metadata', true),
  async run(ctx) {
    const format = outputFormat(ctx);
    const cols = format === 'table' ? fieldsOf(ctx, MACHINE_FIELDS) : [];
    const client = await clientFromGlobals(ctx.globals, ctx.env);
    const machines = await fleetCall('Error retrieving list of active machines', () => listMachines(client));
    if (format === 'json') {
      return json(ctx, {
        machines: machines.map((m) => ({
          machine: m.id,
          ip: orNull(m.primaryIP),
          metadata: m.metadata ?? {},
        })),
      });
    }
    const rows = machines.map((m) => ({
      machine: shortId(m.id, full(ctx)),
      ip: m.primaryIP,
      metadata: formatMetadata(m.metadata ?? {}),
    }));
    return table(ctx, cols, rows);
  },
};

export const listUnitsCmd: Command = {
  name: 'list-units',
  summary: 'List the current state of units in the cluster',
  usage: 'list-units [-l|--full] [--no-legend] [--fields=unit,machine,active,sub] [-o json]',
  description:
    'Lists the state of all units in the cluster loaded onto a machine: one row per unit and machine.\n\n' +
    'For easily parsable output, you can remove the column headers:\n\tfleetctl list-units --no-legend\n\n' +
    'Output the list without ellipses:\n\tfleetctl list-units --full',
  flags: listFlags(UNIT_FIELDS, 'unit,machine,active,sub', true),
  async run(ctx) {
    const format = outputFormat(ctx);
    const cols = format === 'table' ? fieldsOf(ctx, UNIT_FIELDS) : [];
    const client = await clientFromGlobals(ctx.globals, ctx.env);
    const [states, machineList] = await fleetCall('Error retrieving list of units from repository', () =>
      Promise.all([listStates(client), listMachines(client)]),
    );
    const machines = byId(machineList);
    if (format === 'json') {
      return json(ctx, {
        units: states.map((s) => ({
          unit: s.name,
          machine: orNull(s.machineID),
          ip: orNull(machines.get(s.machineID)?.primaryIP),
          hash: orNull(s.hash),
          load: orNull(s.systemdLoadState),
          active: orNull(s.systemdActiveState),
          sub: orNull(s.systemdSubState),
          container: orNull(s.container?.name),
          image: orNull(s.container?.image),
          health: orNull(s.container?.health),
          reason: orNull(s.reason),
          pull: s.pull ?? null,
        })),
      });
    }
    const f = full(ctx);
    const rows = states.map((s) => ({
      unit: s.name,
      machine: machineLabel(s.machineID, machines, f),
      active: s.systemdActiveState,
      sub: s.systemdSubState,
      load: s.systemdLoadState,
      hash: f ? s.hash : s.hash?.slice(0, 7),
      // container units (src/docker): the container, its image and health, why it failed
      container: s.container?.name ?? '-',
      image: s.container?.image ?? '-',
      health: s.container ? s.container.health : '-',
      reason: s.reason ?? '-',
    }));
    return table(ctx, cols, rows);
  },
};

export const listUnitFilesCmd: Command = {
  name: 'list-unit-files',
  summary: 'List the units that exist in the cluster',
  usage: 'list-unit-files [--full] [--no-legend] [--fields=unit,hash,dstate,state,target] [-o json]',
  description:
    'Lists all unit files that exist in the cluster (whether or not they are loaded onto a machine).\n' +
    'flotilla adds the field "reason": why a unit is not placed on any machine.',
  flags: listFlags(UNIT_FILE_FIELDS, 'unit,hash,dstate,state,target', false),
  async run(ctx) {
    const format = outputFormat(ctx);
    const cols = format === 'table' ? fieldsOf(ctx, UNIT_FILE_FIELDS) : [];
    for (const c of cols) {
      if (c === 'tmachine') ctx.io.err('WARNING: The "tmachine" field is deprecated. Use "target" instead\n');
    }
    const client = await clientFromGlobals(ctx.globals, ctx.env);
    const [units, machineList] = await fleetCall('Error retrieving list of units from repository', () =>
      Promise.all([listUnits(client), listMachines(client)]),
    );
    const machines = byId(machineList);
    const { unitFacts } = await import('../unit-facts.js');
    const f = full(ctx);
    if (format === 'json') {
      return json(ctx, {
        unitFiles: units.map((u) => {
          const facts = unitFacts(u);
          const g = isGlobal(u);
          return {
            unit: u.name,
            hash: facts.hash,
            dstate: orNull(u.desiredState),
            state: g ? null : orNull(u.currentState),
            target: g ? null : orNull(u.machineID),
            targetIP: g || !u.machineID ? null : orNull(machines.get(u.machineID)?.primaryIP),
            global: g,
            desc: orNull(facts.description),
            reason: orNull(u.reason),
          };
        }),
      });
    }
    const rows = units.map((u) => {
      const g = isGlobal(u);
      const facts = unitFacts(u);
      const target = g ? 'global' : machineLabel(u.machineID, machines, f);
      return {
        unit: u.name,
        hash: f ? facts.hash : facts.hash.slice(0, 7),
        dstate: u.desiredState,
        state: g ? undefined : u.currentState,
        target,
        tmachine: target,
        global: String(g),
        desc: facts.description,
        reason: u.reason,
      };
    });
    return table(ctx, cols, rows);
  },
};
