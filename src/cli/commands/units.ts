/** submit, load, start, stop, unload, destroy, cat: fleetctl's unit commands and messages. */
import { FlotillaError } from '../../lib/errors.js';
import type { DesiredState } from '../../registry/types.js';
import { UnitFile, mangleUnitName } from '../../unit/index.js';
import { clientFromGlobals, type ApiClient } from '../client.js';
import { generatedUnitText, pullWatcher } from './container.js';
import type { Command, Context } from '../command.js';
import {
  BLOCK_FLAGS,
  blockAttempts,
  getUnit,
  isGlobal,
  lazyCreateUnits,
  machineLabel,
  setDesired,
  waitForState,
} from '../units.js';

const REPLACE = {
  replace: {
    type: 'boolean' as const,
    default: false,
    help: 'Replace the unit in the registry if it differs from the local file',
  },
};

async function transition(
  ctx: Context,
  client: ApiClient,
  names: string[],
  target: DesiredState,
  verb: string,
): Promise<number> {
  const attempts = blockAttempts(ctx);
  const wait: string[] = [];
  for (const name of names) {
    const u = await getUnit(client, name);
    if (!u) continue;
    if (u.desiredState === target) continue;
    await setDesired(client, name, target);
    if (isGlobal(u)) ctx.io.out(`Triggered global unit ${name} ${verb}\n`);
    else if (attempts === undefined) ctx.io.out(`Triggered unit ${name} ${verb}\n`);
    else wait.push(name);
  }
  if (attempts === undefined || wait.length === 0) return 0;
  const watch = target === 'launched' ? pullWatcher(ctx, client, wait) : undefined;
  const failed = await waitForState(
    ctx,
    client,
    wait,
    target,
    attempts,
    (u, machines) => {
      watch?.done();
      ctx.io.out(
        `Unit ${u.name} ${target}${target === 'inactive' ? '' : ` on ${machineLabel(u.machineID, machines, false)}`}\n`,
      );
    },
    watch,
  );
  for (const f of failed) ctx.io.err(`Error waiting for units: ${f.why}\n`);
  return failed.length > 0 ? 1 : 0;
}

function needUnits(ctx: Context): string[] {
  if (ctx.args.length === 0) throw new FlotillaError('E_USAGE', 'No units given');
  return ctx.args;
}

export const submit: Command = {
  name: 'submit',
  summary: 'Upload one or more units to the cluster without starting them',
  usage: 'submit [--replace] UNIT...',
  flags: REPLACE,
  async run(ctx) {
    const client = clientFromGlobals(ctx.globals);
    const units = await lazyCreateUnits(ctx, client, needUnits(ctx), {
      replace: ctx.flags.replace === true,
      allowReplaceIn: ['inactive'],
    });
    for (const u of units) ctx.io.out(`Unit ${u.name} ${isGlobal(u.unit) ? '' : 'inactive'}\n`);
    return 0;
  },
};

function creating(name: string, target: DesiredState, verb: string, allow: DesiredState[]): Command {
  return {
    name,
    summary:
      name === 'load'
        ? 'Schedule one or more units in the cluster, first submitting them if necessary'
        : 'Instruct systemd to start one or more units in the cluster, first submitting and loading if necessary',
    usage: `${name} [--no-block] [--block-attempts=N] [--replace] UNIT...`,
    flags: { ...BLOCK_FLAGS, ...REPLACE },
    async run(ctx) {
      const client = clientFromGlobals(ctx.globals);
      const units = await lazyCreateUnits(ctx, client, needUnits(ctx), {
        replace: ctx.flags.replace === true,
        allowReplaceIn: allow,
      });
      return transition(
        ctx,
        client,
        units.map((u) => u.name),
        target,
        verb,
      );
    },
  };
}

export const load = creating('load', 'loaded', 'load', ['inactive', 'loaded']);
export const start = creating('start', 'launched', 'start', ['inactive', 'loaded', 'launched']);

export const stop: Command = {
  name: 'stop',
  summary: 'Instruct systemd to stop one or more units in the cluster',
  usage: 'stop [--no-block] [--block-attempts=N] UNIT...',
  flags: BLOCK_FLAGS,
  async run(ctx) {
    const client = clientFromGlobals(ctx.globals);
    const names = needUnits(ctx).map(mangleUnitName);
    const found: string[] = [];
    for (const name of names) {
      const u = await getUnit(client, name);
      if (!u) continue;
      if (u.desiredState === 'inactive' && u.currentState === 'inactive' && !isGlobal(u)) {
        throw new FlotillaError('E_CONFLICT', `Unable to stop unit ${name} in state inactive`);
      }
      found.push(name);
    }
    if (found.length === 0) {
      ctx.io.err('Units not found in registry\n');
      return 0;
    }
    const rc = await transition(ctx, client, found, 'loaded', 'stop');
    if (rc === 0) ctx.io.err(`Successfully stopped units [${found.join(' ')}].\n`);
    else ctx.io.err(`Failed to stop units [${found.join(' ')}].\n`);
    return rc;
  },
};

export const unload: Command = {
  name: 'unload',
  summary: 'Unschedule one or more units in the cluster',
  usage: 'unload [--no-block] [--block-attempts=N] UNIT...',
  flags: BLOCK_FLAGS,
  async run(ctx) {
    const client = clientFromGlobals(ctx.globals);
    const names = needUnits(ctx).map(mangleUnitName);
    const found: string[] = [];
    for (const name of names) if (await getUnit(client, name)) found.push(name);
    if (found.length === 0) {
      ctx.io.err('Units not found in registry\n');
      return 0;
    }
    const rc = await transition(ctx, client, found, 'inactive', 'unload');
    if (rc === 0) ctx.io.err(`Successfully unloaded units [${found.join(' ')}].\n`);
    return rc;
  },
};

export const destroy: Command = {
  name: 'destroy',
  summary: 'Destroy one or more units in the cluster',
  usage: 'destroy UNIT...',
  flags: BLOCK_FLAGS,
  async run(ctx) {
    const client = clientFromGlobals(ctx.globals);
    let any = false;
    for (const name of needUnits(ctx).map(mangleUnitName)) {
      try {
        await client.request('DELETE', `/fleet/v1/units/${encodeURIComponent(name)}`);
        ctx.io.out(`Destroyed ${name}\n`);
        any = true;
      } catch (err) {
        if ((err as { status?: number }).status !== 404) throw err;
      }
    }
    if (!any) ctx.io.err('Units not found in registry\n');
    return 0;
  },
};

export const cat: Command = {
  name: 'cat',
  summary: 'Output the contents of a submitted unit',
  usage: 'cat [--generated] UNIT',
  flags: {
    generated: {
      type: 'boolean',
      default: false,
      help: 'For a container unit: the systemd service the agent generates from it',
    },
  },
  async run(ctx) {
    if (ctx.args.length !== 1) throw new FlotillaError('E_USAGE', 'One unit file must be provided');
    const name = mangleUnitName(ctx.args[0]!);
    const u = await getUnit(clientFromGlobals(ctx.globals), name);
    if (!u) throw new FlotillaError('E_NOT_FOUND', `Unit ${name} not found`);
    const file = UnitFile.fromOptions(u.options ?? []);
    ctx.io.out(ctx.flags.generated === true ? await generatedUnitText(file, name) : file.serialize());
    return 0;
  },
};
