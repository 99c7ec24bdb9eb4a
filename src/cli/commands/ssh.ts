/**
 * `ssh {MACHINE|UNIT} [-- COMMAND...]`: the system `ssh` to the public IP of a machine (matched by
 * unique ID prefix) or of the machine hosting a unit, with fleetctl's messages. ssh runs with an
 * argv array and inherited stdio; its exit status (the remote command's, or 255) is ours.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { clientFromGlobals, type ApiClient } from '../client.js';
import { CliExit, type Command, type Context } from '../command.js';
import { fleetCall, getUnit, isGlobal, listMachines, type ApiMachine } from '../fleet.js';
import { portFlag, sshOptions } from '../ssh.js';
import { mangleName } from '../unit-ops.js';

type Lookup = { ok: true; addr: string } | { ok: false; error: string };

function inMachines(machines: ApiMachine[], prefix: string): Lookup {
  const found = machines.filter((m) => m.id.startsWith(prefix));
  if (found.length > 1) return { ok: false, error: 'found more than one machine' };
  if (found.length === 0) return { ok: false, error: 'machine does not exist' };
  return { ok: true, addr: found[0]!.primaryIP };
}

async function inUnits(client: ApiClient, machines: ApiMachine[], arg: string): Promise<Lookup | undefined> {
  const name = mangleName(arg);
  const u = await fleetCall(`Unable to proceed`, () => getUnit(client, name));
  if (!u) return { ok: false, error: 'unit does not exist' };
  if (isGlobal(u)) return { ok: false, error: 'global units unsupported' };
  const ip = machines.find((m) => m.id === u.machineID)?.primaryIP;
  // fleetctl: a unit not on a machine (or a machine without IP) is "not found", without an error.
  return ip ? { ok: true, addr: ip } : undefined;
}

/** The address to connect to and the remote command, or fleetctl's message. */
export async function resolveTarget(
  ctx: Context,
  client: ApiClient,
): Promise<{ addr: string; command: string[] }> {
  const machineFlag = typeof ctx.flags.machine === 'string' ? ctx.flags.machine : '';
  const unitFlag = typeof ctx.flags.unit === 'string' ? ctx.flags.unit : '';
  if (machineFlag !== '' && unitFlag !== '') {
    throw new CliExit(1, 'Both machine and unit flags provided, please specify only one.');
  }
  const machines = await fleetCall('Unable to proceed', () => listMachines(client));
  let args = ctx.args;
  let found: Lookup | undefined;
  if (machineFlag !== '') {
    found = inMachines(machines, machineFlag);
  } else if (unitFlag !== '') {
    found = await inUnits(client, machines, unitFlag);
  } else {
    const lookup = args[0];
    if (lookup === undefined) throw new CliExit(1, 'Unable to proceed: one machine or unit must be provided');
    args = args.slice(1);
    const m = inMachines(machines, lookup);
    const u = await inUnits(client, machines, lookup);
    if (m.ok && u?.ok) {
      throw new CliExit(
        1,
        `Unable to proceed: ambiguous argument, both machine and unit found for \`${lookup}\`.\n` +
          'Please use flag `--machine` or `--unit` to refine the search',
      );
    }
    found = m.ok ? m : u?.ok ? u : { ok: false, error: 'could not find matching unit or machine' };
  }
  if (found && !found.ok) throw new CliExit(1, `Unable to proceed: ${found.error}`);
  if (!found?.ok || found.addr === '') throw new CliExit(1, 'Could not determine address of machine.');
  return { addr: found.addr, command: args };
}

/** ssh's argv for `addr` and the remote command (after `--`, so nothing in it is taken as an option). */
export function sshArgv(ctx: Context, addr: string, command: string[]): string[] {
  const argv = sshOptions(ctx.globals, ctx.env);
  if (ctx.flags['forward-agent'] === true || ctx.flags.A === true) argv.push('-A');
  argv.push('-p', portFlag(ctx.flags['ssh-port']));
  return [...argv, '--', addr, ...command];
}

/** Run ssh with our stdio; resolve its exit status (128+N when killed by signal N). */
export function runSsh(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    // The terminal's Ctrl-C reaches ssh too; we wait for ssh to decide rather than die first.
    const ignore = () => undefined;
    process.on('SIGINT', ignore);
    const done = (code: number) => {
      process.off('SIGINT', ignore);
      resolve(code);
    };
    const child = spawn('ssh', argv, { env, stdio: 'inherit' });
    child.on('error', (err) => {
      const why =
        (err as NodeJS.ErrnoException).code === 'ENOENT'
          ? 'ssh is not installed (no ssh in PATH)'
          : err.message;
      process.stderr.write(`Failed building SSH client: ${why}\n`);
      done(1);
    });
    child.on('exit', (code, signal) => {
      done(code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : 255));
    });
  });
}

export const ssh: Command = {
  name: 'ssh',
  summary: 'Open interactive shell on a machine in the cluster',
  usage: 'ssh [-A|--forward-agent] [--ssh-port=N] [--machine=ID|--unit=UNIT] {MACHINE|UNIT} [-- COMMAND...]',
  description:
    'Open an interactive shell on a specific machine in the cluster or on the machine where the specified\n' +
    'unit is located, with the system ssh (your keys, agent and ~/.ssh/config apply). A machine is matched\n' +
    'by a unique prefix of its ID. Words after the machine or unit (after `--`) are run instead of a shell;\n' +
    'the exit status is theirs (255 when ssh itself fails).\n\n' +
    'Open a shell on a machine:\n\tfleetctl ssh 2444264c\n\n' +
    'Run a command on the machine hosting a unit:\n\tfleetctl ssh foo.service -- systemctl status foo\n\n' +
    'Through a bastion:\n\tfleetctl --tunnel 10.10.10.10 ssh foo.service\n\n' +
    'This command does not work with global units.',
  flags: {
    machine: { type: 'string', short: 'm', value: 'ID', help: 'Open SSH connection to a specific machine' },
    unit: {
      type: 'string',
      short: 'u',
      value: 'UNIT',
      help: 'Open SSH connection to machine running provided unit',
    },
    'forward-agent': { type: 'boolean', default: false, help: 'Forward local ssh-agent to target machine' },
    A: { type: 'boolean', short: 'A', default: false, help: 'Shorthand for --forward-agent' },
    'ssh-port': {
      type: 'string',
      default: '22',
      value: 'N',
      help: 'Connect to remote hosts over SSH using this TCP port',
    },
  },
  complete: 'unit-or-machine',
  async run(ctx) {
    const client = await clientFromGlobals(ctx.globals, ctx.env);
    const { addr, command } = await resolveTarget(ctx, client);
    return runSsh(sshArgv(ctx, addr, command), ctx.env);
  },
};
