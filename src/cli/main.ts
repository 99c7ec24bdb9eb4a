/**
 * CLI entry: `flotilla` (also installed as `fleetctl`). fleetctl's commands, flags, messages and exit
 * codes, with these deliberate differences (README, "Migrating from fleetctl"): an unknown command or
 * a bad flag exits 64 (fleetctl: 0) with a usage hint, and short flags such as `-l` work.
 *
 * Only the resolved command's module is loaded, so `version` starts about as fast as node itself.
 */
import { basename } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { FlotillaError } from '../lib/errors.js';
import { CliExit, UsageError, type CommandEntry, type FlagSpec, type Io } from './command.js';
import { COMMANDS, findCommand } from './commands/index.js';
import { GLOBAL_FLAGS, globalsFromEnv, parseGoBool } from './globals.js';

const defaultIo: Io = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
};

/**
 * When the reader of our output goes away (`fleetctl list-units | head -1`, `journal -f | grep -m1`),
 * stop quietly with 0 instead of dying on EPIPE with a stack trace.
 */
function quietOnClosedStdout(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

export function progName(argv1 = process.argv[1] ?? 'flotilla'): string {
  const b = basename(argv1);
  return b === 'fleetctl' || b === 'coreos-cloudinit' ? b : 'flotilla';
}

/** Go's flag syntax for a `goFlags` command: `-name[=v]` → `--name[=v]` for its long flag names. */
export function goStyleFlags(args: readonly string[], flags: Record<string, FlagSpec>): string[] {
  let rest = false;
  return args.map((a) => {
    if (rest) return a;
    if (a === '--') {
      rest = true;
      return a;
    }
    const m = /^-([A-Za-z][A-Za-z0-9-]+)(=.*)?$/.exec(a);
    return m && flags[m[1]!] !== undefined ? `-${a}` : a;
  });
}

function toParseOptions(flags: Record<string, FlagSpec>): NonNullable<ParseArgsConfig['options']> {
  const out: NonNullable<ParseArgsConfig['options']> = {};
  for (const [name, f] of Object.entries(flags)) {
    out[name] = f.short && f.short !== name ? { type: f.type, short: f.short } : { type: f.type };
  }
  return out;
}

function specOf(flags: Record<string, FlagSpec>, token: string): [string, FlagSpec] | undefined {
  if (token.startsWith('--')) {
    const name = token.slice(2).split('=')[0]!;
    const f = flags[name];
    return f ? [name, f] : undefined;
  }
  const short = token.slice(1, 2);
  return Object.entries(flags).find(([, f]) => f.short === short);
}

/** Index of the first positional word (the command), skipping global flags and their values. */
function commandIndex(argv: string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return i + 1 < argv.length ? i + 1 : -1;
    if (!a.startsWith('-') || a === '-') return i;
    const spec = specOf(GLOBAL_FLAGS, a);
    if (spec?.[1].type === 'string' && !a.includes('=') && !(a.length > 2 && !a.startsWith('--'))) i++;
  }
  return -1;
}

/**
 * Go's boolean flags take `--flag=false` (and 1/0/t/f/TRUE/…); node's parseArgs does not. Rewrite
 * `--flag=<true>` to `--flag` and drop `--flag=<false>`, remembering the explicit false.
 */
function goBooleans(args: string[], flags: Record<string, FlagSpec>): { args: string[]; falses: string[] } {
  const out: string[] = [];
  const falses: string[] = [];
  let rest = false;
  for (const a of args) {
    if (rest || !a.startsWith('--') || !a.includes('=')) {
      if (a === '--') rest = true;
      out.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq);
    if (flags[name]?.type !== 'boolean') {
      out.push(a);
      continue;
    }
    const v = parseGoBool(a.slice(eq + 1));
    if (v === undefined) {
      throw new UsageError(
        `invalid argument ${JSON.stringify(a.slice(eq + 1))} for "--${name}" flag: strconv.ParseBool: parsing ${JSON.stringify(a.slice(eq + 1))}: invalid syntax`,
      );
    }
    if (v) out.push(`--${name}`);
    else falses.push(name);
  }
  return { args: out, falses };
}

type Values = Record<string, string | boolean | undefined>;

/** parseArgs' messages in the words of fleetctl's flag parser (cobra/pflag). */
function cobraMessage(msg: string): string {
  const unknown = /^Unknown option '(-{1,2})([^']*)'/.exec(msg);
  if (unknown) {
    return unknown[1] === '--'
      ? `unknown flag: --${unknown[2]}`
      : `unknown shorthand flag: '${unknown[2]}' in -${unknown[2]}`;
  }
  const missing = /^Option '(?:-\w, )?(--[^ ']+) <value>' argument missing/.exec(msg);
  if (missing) return `flag needs an argument: ${missing[1]}`;
  const noArg = /^Option '(?:-\w, )?(--[^ ']+)' does not take an argument/.exec(msg);
  if (noArg) return `flag ${noArg[1]} does not take a value`;
  return msg.replace(/\. To specify a positional argument.*$/s, '');
}

export async function main(argv: string[], io: Io = defaultIo, env = process.env): Promise<number> {
  if (basename(process.argv[1] ?? '') === 'coreos-cloudinit') argv = ['cloudinit', ...argv];
  if (basename(process.argv[1] ?? '') === 'locksmithctl') {
    argv = ['locksmith', ...(await import('./commands/locksmith.js')).locksmithctlArgv(argv)];
  } else if (basename(process.argv[1] ?? '') === 'update_engine_client') {
    try {
      argv = (await import('./commands/update.js')).updateEngineClientArgv(argv);
    } catch (err) {
      io.err(`${(err as Error).message}\n`);
      return 64;
    }
  }
  const prog = progName();
  if (io === defaultIo) quietOnClosedStdout();
  try {
    const ci = commandIndex(argv);
    const word = ci >= 0 ? argv[ci]! : undefined;
    let entry: CommandEntry | undefined;
    if (word !== undefined) {
      const found = findCommand(word);
      if (!found) throw new UsageError(`unknown command ${JSON.stringify(word)} for "${prog}"`);
      if ('ambiguous' in found) {
        throw new UsageError(
          `ambiguous command "${word}" for "${prog}": could be ${found.ambiguous.join(', ')}`,
        );
      }
      entry = found;
    }
    const cmd = entry ? await entry.load() : undefined;
    const flagSpecs = { ...GLOBAL_FLAGS, ...(cmd?.flags ?? {}) };
    let cmdArgs = ci >= 0 ? [...argv.slice(0, ci), ...argv.slice(ci + 1)] : argv;
    if (cmd?.goFlags) cmdArgs = goStyleFlags(cmdArgs, flagSpecs);
    const { args: rest, falses } = goBooleans(cmdArgs, flagSpecs);
    let parsed;
    try {
      parsed = parseArgs({
        args: rest,
        options: toParseOptions(flagSpecs),
        strict: true,
        allowPositionals: true,
      });
    } catch (err) {
      throw new UsageError(cobraMessage((err as Error).message));
    }
    const given = parsed.values as Values;
    for (const name of falses) given[name] = false;
    // Deprecated spellings set the flag they stand for.
    for (const [name, spec] of Object.entries(flagSpecs)) {
      if (spec.alias && given[name] !== undefined) {
        given[spec.alias] ??= given[name];
        delete given[name];
      }
    }
    const explicit = new Set(Object.keys(given).filter((k) => given[k] !== undefined));
    const fromEnv = globalsFromEnv(env);
    const withDefault = (name: string, spec: FlagSpec | undefined) => given[name] ?? spec?.default;
    const globals: Values = {};
    for (const [name, spec] of Object.entries(GLOBAL_FLAGS)) {
      if (spec.alias) continue;
      globals[name] = explicit.has(name) ? given[name] : (fromEnv[name] ?? withDefault(name, spec));
    }
    if (globals.version === true) {
      io.out(`${prog} version ${(await import('../version.js')).VERSION}\n`);
      return 0;
    }
    if (!cmd || globals.help === true) {
      const { commandHelp, globalHelp } = await import('./help.js');
      io.out(cmd ? commandHelp(prog, cmd) : globalHelp(prog, COMMANDS));
      return 0;
    }
    const flags: Values = {};
    for (const [name, spec] of Object.entries(cmd.flags ?? {})) flags[name] = withDefault(name, spec);
    return await cmd.run({
      prog,
      globals,
      flags,
      explicit,
      args: parsed.positionals,
      io,
      env,
      commands: COMMANDS,
    });
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`Error: ${err.message}\nRun '${prog} help' for usage.\n`);
      return err.exitCode;
    }
    if (err instanceof CliExit) {
      if (err.message !== '') io.err(`${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof FlotillaError) {
      io.err(`${err.message}\n`);
      return err.exitCode;
    }
    const { ApiError, UnreachableError } = await import('./client.js');
    if (err instanceof ApiError || err instanceof UnreachableError) {
      io.err(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
