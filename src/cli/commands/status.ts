/**
 * status and journal, through the agents' API instead of fleetctl's SSH: the agent that hosts the
 * unit runs `systemctl status` / `journalctl` and the answer is relayed by whichever agent the CLI
 * talks to (contract: GET /flotilla/v1/units/{name}/status and /journal). No SSH keys, no agent
 * forwarding, no known_hosts prompts; fleetctl's messages and exit codes.
 */
import type { IncomingMessage } from 'node:http';
import { ApiError, UnreachableError, apiError, clientFromGlobals, readAll } from '../client.js';
import { CliExit, UsageError, type Command, type Context, type FlagSpec } from '../command.js';
import { JOURNAL_OUTPUTS } from '../../systemd/journal.js';
import { mangleName, unitArgs } from '../unit-ops.js';

/**
 * The hosting machine's agent runs systemctl/journalctl and the answer may be relayed by another
 * agent: allow at least this long for it, however short --request-timeout is.
 */
export const REMOTE_MIN_TIMEOUT_MS = 30_000;

const SSH_PORT: FlagSpec = {
  type: 'string',
  default: '22',
  value: 'N',
  hidden: true,
  help: 'Accepted for fleetctl compatibility; status and journal go through the API, not SSH',
};

function linesFlag(ctx: Context): number {
  const raw = String(ctx.flags.lines ?? '10');
  if (!/^\d+$/.test(raw)) throw new UsageError(`invalid argument ${JSON.stringify(raw)} for "--lines" flag`);
  return Number(raw);
}

/**
 * Turn an error answer of the status/journal endpoints into fleetctl's message and exit code:
 * the unit's own problems (404/409) exit 1 with the server's message; an unreachable hosting
 * machine exits 255 (fleetctl: "Unable to SSH to remote host"); anything else exits 1.
 */
function failure(err: unknown, what: string, name: string): CliExit {
  if (err instanceof ApiError) {
    if (err.status === 404 && err.message === 'not found') {
      return new CliExit(
        1,
        `${what}: this agent does not serve ${what === 'status' ? 'status' : 'journals'} (upgrade flotilla on the cluster)`,
      );
    }
    if (err.status === 404 || err.status === 409) return new CliExit(1, err.message);
    if (err.status === 502)
      return new CliExit(255, `Unable to reach the machine of unit ${name}: ${err.message}`);
    return new CliExit(1, `Error retrieving ${what} of unit ${name}: ${err.message}`);
  }
  if (err instanceof UnreachableError)
    return new CliExit(1, `Error retrieving ${what} of unit ${name}: ${err.message}`);
  return err as CliExit;
}

async function errorOf(res: IncomingMessage, endpoint: string, timeoutMs: number): Promise<ApiError> {
  const text = await readAll(res, timeoutMs, endpoint).catch(() => '');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return apiError(res.statusCode ?? 0, parsed, text);
}

export const status: Command = {
  name: 'status',
  summary: 'Output the status of one or more units in the cluster',
  usage: 'status [--lines=N] UNIT...',
  description:
    'Output the status of one or more units currently running in the cluster: `systemctl status -l` run\n' +
    'by the agent on the machine hosting each unit, relayed through the API (no SSH needed; the answer\n' +
    'may take up to 30 s or --request-timeout, whichever is longer). Statuses are\n' +
    'separated by a blank line; the first non-zero exit status of systemctl stops and becomes the exit code.\n\n' +
    'Show status of a single unit:\n\tfleetctl status foo.service\n\n' +
    'This command does not work with global units.',
  flags: {
    lines: { type: 'string', short: 'n', default: '10', value: 'N', help: 'Number of journal lines to show' },
    'ssh-port': SSH_PORT,
  },
  complete: 'units',
  async run(ctx) {
    const names = unitArgs(ctx);
    const lines = linesFlag(ctx);
    const client = await clientFromGlobals(ctx.globals, ctx.env);
    let code = 0;
    for (const [i, name] of names.entries()) {
      let body: { exitCode?: number; output?: string } | undefined;
      try {
        body = (
          await client.request<{ exitCode?: number; output?: string }>(
            'GET',
            `/flotilla/v1/units/${encodeURIComponent(name)}/status?lines=${lines}`,
            undefined,
            Math.max(client.timeoutMs, REMOTE_MIN_TIMEOUT_MS),
          )
        ).body;
      } catch (err) {
        throw failure(err, 'status', name);
      }
      // The extra newline matches systemctl status output for several units.
      if (i !== 0) ctx.io.out('\n');
      ctx.io.out(body?.output ?? '');
      code = typeof body?.exitCode === 'number' ? body.exitCode : 1;
      if (code !== 0) break;
    }
    return code;
  },
};

export const journal: Command = {
  name: 'journal',
  summary: 'Print the journal of a unit in the cluster to stdout',
  usage: 'journal [--lines=N] [-f|--follow] [--output=MODE] [--sudo] UNIT',
  description:
    'Outputs the journal of a unit: `journalctl --unit UNIT --no-pager -n N --output MODE [-f]` run by the\n' +
    'agent on the machine hosting the unit, streamed through the API (no SSH needed). With --follow it\n' +
    'keeps printing new entries until interrupted (Ctrl-C, exit 130).\n\n' +
    'Read the last 10 lines:\n\tfleetctl journal foo.service\n\n' +
    'Read the last 100 lines:\n\tfleetctl journal --lines 100 foo.service\n\n' +
    'This command does not work with global units.',
  flags: {
    lines: {
      type: 'string',
      short: 'n',
      default: '10',
      value: 'N',
      help: 'Number of recent log lines to return',
    },
    follow: {
      type: 'boolean',
      default: false,
      help: 'Continuously print new entries as they are appended to the journal',
    },
    f: { type: 'boolean', short: 'f', default: false, help: 'Shorthand for --follow' },
    output: {
      type: 'string',
      short: 'o',
      default: 'short',
      value: 'MODE',
      help: `Output mode, as journalctl's --output: ${JOURNAL_OUTPUTS.join(', ')}`,
    },
    sudo: {
      type: 'boolean',
      default: false,
      help: 'Accepted for fleetctl compatibility; the agent reads the journal as root anyway',
    },
    'ssh-port': SSH_PORT,
  },
  complete: 'units',
  async run(ctx) {
    if (ctx.args.length !== 1) throw new CliExit(1, 'One unit file must be provided.');
    const name = mangleName(ctx.args[0]!);
    const lines = linesFlag(ctx);
    const output = String(ctx.flags.output ?? 'short');
    if (!(JOURNAL_OUTPUTS as readonly string[]).includes(output)) {
      throw new UsageError(
        `invalid argument ${JSON.stringify(output)} for "--output" flag: one of ${JOURNAL_OUTPUTS.join(', ')}`,
      );
    }
    const follow = ctx.flags.follow === true || ctx.flags.f === true;
    const client = await clientFromGlobals(ctx.globals, ctx.env);
    const timeoutMs = Math.max(client.timeoutMs, REMOTE_MIN_TIMEOUT_MS);
    const q = new URLSearchParams({ lines: String(lines), follow: String(follow), output });
    let res: IncomingMessage;
    try {
      res = await client.open(
        'GET',
        `/flotilla/v1/units/${encodeURIComponent(name)}/journal?${q.toString()}`,
      );
    } catch (err) {
      throw failure(err, 'journal', name);
    }
    if ((res.statusCode ?? 0) >= 400)
      throw failure(await errorOf(res, client.endpoint, timeoutMs), 'journal', name);
    return stream(ctx, res, name);
  },
};

/**
 * Copy the journal to stdout as it arrives. Ctrl-C (SIGINT) or SIGTERM closes the connection (the
 * agent then kills journalctl) and exits 130 / 143; a connection lost mid-stream exits 1.
 */
function stream(ctx: Context, res: IncomingMessage, name: string): Promise<number> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (code: number, message?: string) => {
      if (done) return;
      done = true;
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      if (message) ctx.io.err(`${message}\n`);
      resolve(code);
    };
    const onInt = () => {
      finish(130);
      res.destroy();
    };
    const onTerm = () => {
      finish(143);
      res.destroy();
    };
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => ctx.io.out(chunk));
    res.on('end', () => finish(0));
    res.on('error', (err) => finish(1, `Error reading the journal of unit ${name}: ${err.message}`));
    res.on('close', () => {
      if (!res.complete) finish(1, `Error reading the journal of unit ${name}: the connection was closed`);
    });
  });
}
