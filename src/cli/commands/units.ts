/**
 * submit, load, start, stop, unload, restart, destroy, cat: fleetctl's unit commands, messages and
 * exit codes (see /work/shared/reference/fleet.md §1.3). Differences, all on purpose and listed in
 * README "Migrating from fleetctl": waits are bounded by default and fail early with the engine's
 * reason; `restart` really waits for the stop; `destroy` waits until no machine reports the unit.
 */
import type { DesiredState } from '../../registry/types.js';
import { clientFromGlobals, type ApiClient } from '../client.js';
import { CliExit, type Command, type Context } from '../command.js';
import { destroyUnits, getUnits } from '../batch.js';
import { fleetCall, getUnit, isGlobal, type ApiUnit } from '../fleet.js';
import { generatedUnitText } from './container.js';
import {
  BLOCK_FLAGS,
  REPLACE_FLAGS,
  blockAttempts,
  lazyCreateUnits,
  mangleName,
  transition,
  unitArgs,
  waitForGone,
  type WaitFailure,
} from '../unit-ops.js';

/** After a failed wait, fleetctl's summary line for load/start/restart. */
function waitSummary(ctx: Context, failed: WaitFailure[]): number {
  if (failed.length === 0) return 0;
  ctx.io.err(`Error waiting for unit states, exit status: ${failed[0]!.why}\n`);
  return 1;
}

export const submit: Command = {
  name: 'submit',
  summary: 'Upload one or more units to the cluster without starting them',
  usage: 'submit [--replace] UNIT...',
  description:
    'Upload one or more units to the cluster without starting them. Useful for validating units before\n' +
    'they are started. A unit already in the cluster is left alone (a warning says when the local file\n' +
    'differs); --replace replaces it while it is inactive.\n\n' +
    'Submit a single unit:\n\tfleetctl submit foo.service\n\n' +
    'Submit a template and start instances of it:\n\tfleetctl submit hello@.service\n\tfleetctl start hello@{1..3}.service',
  flags: REPLACE_FLAGS,
  complete: 'files',
  async run(ctx) {
    unitArgs(ctx);
    const client = await clientFromGlobals(ctx.globals, ctx.env);
    await lazyCreateUnits(ctx, client, 'submit');
    return 0;
  },
};

function creating(
  name: 'load' | 'start',
  target: DesiredState,
  summary: string,
  description: string,
): Command {
  return {
    name,
    summary,
    usage: `${name} [--no-block|--block-attempts=N] [--replace] UNIT...`,
    description,
    flags: { ...BLOCK_FLAGS, ...REPLACE_FLAGS },
    complete: 'files',
    async run(ctx) {
      unitArgs(ctx);
      const attempts = blockAttempts(ctx);
      const client = await clientFromGlobals(ctx.globals, ctx.env);
      const { units, names } = await lazyCreateUnits(ctx, client, name);
      const { failed } = await transition(ctx, client, {
        units: names.map((n) => units.get(n)!),
        target,
        verb: name,
        attempts,
        errPrefix: name === 'load' ? 'Error loading units' : 'Error starting units',
      });
      return waitSummary(ctx, failed);
    },
  };
}

export const load = creating(
  'load',
  'loaded',
  'Schedule one or more units in the cluster, first submitting them if necessary',
  'Schedule units onto machines and install them with systemd, without starting them; submits them first\n' +
    'if necessary. Waits until each unit is loaded (15 attempts of 2 s by default; --block-attempts=0 waits\n' +
    'forever); a unit no machine can take fails after one attempt with the reason.',
);

export const start = creating(
  'start',
  'launched',
  'Instruct systemd to start one or more units in the cluster, first submitting and loading if necessary',
  'Start one or more units on the cluster, first submitting and loading them if necessary. Waits until each\n' +
    "unit's start job has completed on its machine (15 attempts of 2 s by default; --block-attempts=0 waits\n" +
    'forever); a unit no machine can take fails after one attempt with the reason, e.g.\n' +
    '\tunit hello.service not scheduled: no machine matches MachineMetadata region=eu\n' +
    'Global units are never waited for.\n\n' +
    'Start a single unit:\n\tfleetctl start foo.service\n\n' +
    'Start instances of a template (from the registry or hello@.service in the current directory):\n' +
    '\tfleetctl start hello@{1..3}.service',
);

/** The units of the arguments that exist, in argument order; fleetctl skips unknown names. */
async function findUnits(client: ApiClient, names: string[]): Promise<ApiUnit[]> {
  const got = await fleetCall(`Error retrieving unit ${names[0] ?? ''}`, () => getUnits(client, names));
  return [...new Set(names)].flatMap((n) => {
    const u = got.get(n);
    return u ? [u] : [];
  });
}

/**
 * stop and unload: fleetctl's shape, once. Unknown units are skipped ("Units not found in registry",
 * exit 0, when none exist); units already at the target are skipped; the rest get the target and
 * are waited for; the last line (stderr) says which units were handled.
 */
function lowering(opts: {
  name: 'stop' | 'unload';
  target: DesiredState;
  summary: string;
  description: string;
  refuseInactive: boolean;
  done: string;
  failed: (units: string, why: string) => string;
}): Command {
  return {
    name: opts.name,
    summary: opts.summary,
    usage: `${opts.name} [--no-block|--block-attempts=N] UNIT...`,
    description: opts.description,
    flags: BLOCK_FLAGS,
    complete: 'units',
    async run(ctx) {
      const names = unitArgs(ctx);
      const attempts = blockAttempts(ctx);
      const client = await clientFromGlobals(ctx.globals, ctx.env);
      const units = await findUnits(client, names);
      if (units.length === 0) throw new CliExit(0, 'Units not found in registry');
      if (opts.refuseInactive) {
        for (const u of units) {
          if (!isGlobal(u) && (u.currentState ?? 'inactive') === 'inactive') {
            throw new CliExit(1, `Unable to stop unit ${u.name} in state inactive`);
          }
        }
      }
      const { acted, failed } = await transition(ctx, client, {
        units,
        target: opts.target,
        verb: opts.name,
        attempts,
        errPrefix: opts.name === 'stop' ? 'Error stopping units' : 'Error unloading units',
      });
      const handled = acted.filter((n) => !units.find((u) => u.name === n && isGlobal(u)));
      if (failed.length > 0) {
        ctx.io.err(`${opts.failed(`[${handled.join(' ')}]`, failed[0]!.why)}\n`);
        return 1;
      }
      ctx.io.err(`${opts.done} [${handled.join(' ')}].\n`);
      return 0;
    },
  };
}

export const stop = lowering({
  name: 'stop',
  target: 'loaded',
  summary: 'Instruct systemd to stop one or more units in the cluster',
  description:
    'Stop one or more units from running in the cluster, but allow them to be started again in the future.\n' +
    'Waits until each unit is stopped (15 attempts of 2 s by default). A unit that is not loaded on a\n' +
    'machine cannot be stopped (exit 1).',
  refuseInactive: true,
  done: 'Successfully stopped units',
  failed: (units, why) => `Failed to stop units ${units}. err: ${why}`,
});

export const unload = lowering({
  name: 'unload',
  target: 'inactive',
  summary: 'Unschedule one or more units in the cluster',
  description:
    'Stop units and remove them from their machines, keeping them in the cluster (desired state inactive).\n' +
    'Waits until each unit is inactive (15 attempts of 2 s by default).',
  refuseInactive: false,
  done: 'Successfully unloaded units',
  failed: (units, why) => `Failed to unload units ${units}. err: ${why}`,
});

export const restart: Command = {
  name: 'restart',
  summary: 'Instruct systemd to rolling restart one or more units in the cluster',
  usage: 'restart [--block-attempts=N] UNIT...',
  description:
    'Restart one or more units in the cluster, one after the other: each running unit is stopped, waited\n' +
    'for, started and waited for again (fleetctl did not wait for the stop). A loaded unit is started.\n' +
    'An inactive unit is refused with a message (exit 0, as fleetctl). Global units are not restarted.',
  flags: { 'block-attempts': BLOCK_FLAGS['block-attempts']! },
  complete: 'units',
  async run(ctx) {
    const names = unitArgs(ctx);
    const attempts = blockAttempts(ctx) ?? Infinity;
    const client = await clientFromGlobals(ctx.globals, ctx.env);
    await lazyCreateUnits(ctx, client, 'restart');
    const units = await findUnits(client, names);
    for (const u of units) {
      if (isGlobal(u)) {
        ctx.io.err(`Unable to restart global unit ${u.name}: restart it per machine with ssh\n`);
        continue;
      }
      const current = u.currentState ?? 'inactive';
      if (current === 'inactive') {
        ctx.io.err(`Unable to restart unit ${u.name} in state inactive\n`);
        continue;
      }
      if (current === 'launched') {
        const r = await transition(ctx, client, {
          units: [{ ...u, desiredState: 'launched' }],
          target: 'loaded',
          verb: 'stop',
          attempts,
          errPrefix: 'Error setting target state for unit %s',
        });
        if (r.failed.length > 0) return waitSummary(ctx, r.failed);
      }
      const r = await transition(ctx, client, {
        units: [{ ...u, desiredState: 'loaded' }],
        target: 'launched',
        verb: 'start',
        attempts,
        errPrefix: 'Error setting target state for unit %s',
      });
      if (r.failed.length > 0) return waitSummary(ctx, r.failed);
    }
    return 0;
  },
};

export const destroy: Command = {
  name: 'destroy',
  summary: 'Destroy one or more units in the cluster',
  usage: 'destroy [--no-block|--block-attempts=N] UNIT...',
  description:
    'Completely remove one or more running or submitted units from the cluster. Their machines stop and\n' +
    'remove them; destroy waits until no machine reports them (15 attempts of 2 s by default; --no-block\n' +
    'returns at once). Destroyed units cannot be started unless submitted again.',
  flags: BLOCK_FLAGS,
  complete: 'units',
  async run(ctx) {
    const names = unitArgs(ctx);
    const attempts = blockAttempts(ctx);
    const client = await clientFromGlobals(ctx.globals, ctx.env);
    let code = 0;
    const r = await destroyUnits(client, names);
    // Reported in argument order; a unit the agent could not destroy is named, the rest go on.
    const gone = new Set(r.destroyed);
    const destroyed = [...new Set(names)].filter((n) => gone.has(n));
    for (const msg of new Set(r.failed.map((f) => f.err.message))) {
      ctx.io.err(`Error destroying units: ${msg}\n`);
      code = 1;
    }
    if (destroyed.length === 0 && code === 0) throw new CliExit(0, 'Units not found in registry');
    if (attempts !== undefined && destroyed.length > 0) {
      const failed = await waitForGone(client, destroyed, attempts);
      for (const f of failed) ctx.io.err(`Error waiting for units: ${f.why}\n`);
      if (failed.length > 0) code = 1;
    }
    for (const name of destroyed) ctx.io.out(`Destroyed ${name}\n`);
    return code;
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
  description:
    'Outputs the unit file that is currently loaded in the cluster, in the normal form fleet stores\n' +
    '(comments and blank lines dropped, options grouped by section). Useful to verify the correct version\n' +
    'of a unit is running.',
  complete: 'units',
  async run(ctx) {
    if (ctx.args.length !== 1) throw new CliExit(1, 'One unit file must be provided.');
    const name = mangleName(ctx.args[0]!);
    const client = await clientFromGlobals(ctx.globals, ctx.env);
    const u = await fleetCall(`Error retrieving Unit ${name}`, () => getUnit(client, name));
    if (!u) throw new CliExit(1, `Unit ${name} not found`);
    const { UnitFile } = await import('../../unit/file.js');
    const file = UnitFile.fromOptions(u.options ?? []);
    ctx.io.out(ctx.flags.generated === true ? await generatedUnitText(file, name) : file.serialize());
    return 0;
  },
};
