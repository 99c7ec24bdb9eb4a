/** list-machines, list-units, list-unit-files: fleetctl's tables (tabwriter, TAB padding) or `-o json`. */
import { FlotillaError } from '../../lib/errors.js';
import { clientFromGlobals } from '../client.js';
import type { Command, Context, FlagSpec } from '../command.js';
import { tabwrite } from '../tabwriter.js';
import { isGlobal, listMachines, listStates, listUnits, machineLabel, shortId, unitHash } from '../units.js';

type Row = Record<string, string>;

function listFlags(defaults: string, full: boolean): Record<string, FlagSpec> {
  const f: Record<string, FlagSpec> = {
    fields: { type: 'string', default: defaults, value: 'FIELDS', help: 'Columns to print, comma separated' },
    'no-legend': { type: 'boolean', default: false, help: 'Do not print a legend (column headers)' },
    full: { type: 'boolean', default: false, help: 'Do not ellipsize fields on output' },
    output: { type: 'string', short: 'o', default: 'table', value: 'FORMAT', help: 'table or json' },
  };
  if (full) f.l = { type: 'boolean', short: 'l', default: false, help: 'Shorthand for --full' };
  return f;
}

function render(ctx: Context, valid: readonly string[], rows: Row[], json: () => unknown): number {
  const output = String(ctx.flags.output ?? 'table');
  if (output === 'json') {
    ctx.io.out(`${JSON.stringify(json(), null, 2)}\n`);
    return 0;
  }
  if (output !== 'table')
    throw new FlotillaError('E_USAGE', `--output: ${JSON.stringify(output)} must be table or json`);
  const fields = String(ctx.flags.fields ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (fields.length === 0) throw new FlotillaError('E_USAGE', 'Must define output format');
  for (const f of fields) {
    if (!valid.includes(f))
      throw new FlotillaError('E_USAGE', `Invalid key in output format: ${JSON.stringify(f)}`);
  }
  const lines: string[][] = [];
  if (ctx.flags['no-legend'] !== true) lines.push(fields.map((f) => f.toUpperCase()));
  for (const r of rows) lines.push(fields.map((f) => (r[f] === undefined || r[f] === '' ? '-' : r[f])));
  ctx.io.out(tabwrite(lines));
  return 0;
}

const full = (ctx: Context) => ctx.flags.full === true || ctx.flags.l === true;

export const listMachinesCmd: Command = {
  name: 'list-machines',
  summary: 'Enumerate the current hosts in the cluster',
  usage: 'list-machines [--fields=machine,ip,metadata] [--full] [--no-legend] [-o json]',
  flags: listFlags('machine,ip,metadata', true),
  async run(ctx) {
    const machines = await listMachines(clientFromGlobals(ctx.globals));
    const rows = machines.map((m) => ({
      machine: shortId(m.id, full(ctx)),
      ip: m.primaryIP,
      metadata: Object.keys(m.metadata)
        .sort()
        .map((k) => `${k}=${m.metadata[k]}`)
        .join(','),
    }));
    return render(ctx, ['machine', 'ip', 'metadata'], rows, () => ({ machines }));
  },
};

export const listUnitsCmd: Command = {
  name: 'list-units',
  summary: 'List the current state of units in the cluster',
  usage:
    'list-units [--fields=unit,machine,active,sub] [--full] [--no-legend] [-o json]   (also: load, hash, container, image, health, reason)',
  flags: listFlags('unit,machine,active,sub', true),
  async run(ctx) {
    const client = clientFromGlobals(ctx.globals);
    const [states, machines] = await Promise.all([listStates(client), listMachines(client)]);
    const rows = states.map((s) => ({
      unit: s.name,
      machine: machineLabel(s.machineID, machines, full(ctx)),
      active: s.systemdActiveState,
      sub: s.systemdSubState,
      load: s.systemdLoadState,
      hash: full(ctx) ? s.hash : s.hash.slice(0, 7),
      // container units (src/docker): the container, its image and health, why it failed
      container: s.container?.name ?? '-',
      image: s.container?.image ?? '-',
      health: s.container ? s.container.health : '-',
      reason: s.reason ?? '-',
    }));
    return render(
      ctx,
      ['active', 'container', 'hash', 'health', 'image', 'load', 'machine', 'reason', 'sub', 'unit'],
      rows,
      () => ({ states }),
    );
  },
};

export const listUnitFilesCmd: Command = {
  name: 'list-unit-files',
  summary: 'List the units that exist in the cluster',
  usage: 'list-unit-files [--fields=unit,hash,dstate,state,target] [--full] [--no-legend] [-o json]',
  flags: listFlags('unit,hash,dstate,state,target', false),
  async run(ctx) {
    const client = clientFromGlobals(ctx.globals);
    const [units, machines] = await Promise.all([listUnits(client), listMachines(client)]);
    if (String(ctx.flags.fields).split(',').includes('tmachine')) {
      ctx.io.err('WARNING: The "tmachine" field is deprecated. Use "target" instead\n');
    }
    const rows = units.map((u) => {
      const g = isGlobal(u);
      const hash = unitHash(u);
      const target = g ? 'global' : machineLabel(u.machineID, machines, full(ctx));
      return {
        unit: u.name,
        hash: full(ctx) ? hash : hash.slice(0, 7),
        dstate: u.desiredState ?? '-',
        state: g ? '-' : (u.currentState ?? '-'),
        target,
        tmachine: target,
        global: String(g),
        desc: u.options?.find((o) => o.section === 'Unit' && o.name === 'Description')?.value ?? '-',
        reason: u.reason ?? '-',
      };
    });
    return render(
      ctx,
      ['desc', 'dstate', 'global', 'hash', 'reason', 'state', 'target', 'tmachine', 'unit'],
      rows,
      () => ({
        units,
      }),
    );
  },
};
