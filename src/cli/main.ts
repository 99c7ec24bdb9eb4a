/**
 * CLI entry: `flotilla` (also installed as `fleetctl`). Unlike fleetctl, an unknown command or a bad
 * flag exits non-zero (64, E_USAGE) with a usage hint, and short flags such as `-l` work.
 */
import { basename } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { FlotillaError } from '../lib/errors.js';
import { ApiError } from './client.js';
import type { Command, FlagSpec, Io } from './command.js';
import { COMMANDS } from './commands/index.js';
import { GLOBAL_FLAGS, globalsFromEnv } from './globals.js';
import { commandHelp, globalHelp } from './help.js';

const defaultIo: Io = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
};

export function progName(argv1 = process.argv[1] ?? 'flotilla'): string {
  return basename(argv1) === 'fleetctl' ? 'fleetctl' : 'flotilla';
}

/** Resolve a command by exact name or unique prefix. */
export function findCommand(word: string): Command | { ambiguous: string[] } | undefined {
  const exact = COMMANDS.find((c) => c.name === word);
  if (exact) return exact;
  const matches = COMMANDS.filter((c) => !c.hidden && c.name.startsWith(word));
  if (matches.length === 1) return matches[0];
  if (matches.length > 1) return { ambiguous: matches.map((c) => c.name) };
  return undefined;
}

function toParseOptions(flags: Record<string, FlagSpec>): NonNullable<ParseArgsConfig['options']> {
  const out: NonNullable<ParseArgsConfig['options']> = {};
  for (const [name, f] of Object.entries(flags)) {
    out[name] = f.short ? { type: f.type, short: f.short } : { type: f.type };
  }
  return out;
}

/** Index of the first positional word (the command), skipping global flags and their values. */
function commandIndex(argv: string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return i + 1 < argv.length ? i + 1 : -1;
    if (!a.startsWith('-') || a === '-') return i;
    const name = a.replace(/^--?/, '').split('=')[0]!;
    const spec = GLOBAL_FLAGS[name] ?? Object.values(GLOBAL_FLAGS).find((f) => f.short === name);
    if (spec?.type === 'string' && !a.includes('=')) i++;
  }
  return -1;
}

class UsageError extends FlotillaError {
  constructor(message: string) {
    super('E_USAGE', message);
  }
}

export async function main(argv: string[], io: Io = defaultIo, env = process.env): Promise<number> {
  const prog = progName();
  try {
    const ci = commandIndex(argv);
    const word = ci >= 0 ? argv[ci]! : undefined;
    let cmd: Command | undefined;
    if (word !== undefined) {
      const found = findCommand(word);
      if (!found) throw new UsageError(`unknown command "${word}" for "${prog}"`);
      if ('ambiguous' in found) {
        throw new UsageError(
          `ambiguous command "${word}" for "${prog}": could be ${found.ambiguous.join(', ')}`,
        );
      }
      cmd = found;
    }
    const rest = ci >= 0 ? [...argv.slice(0, ci), ...argv.slice(ci + 1)] : argv;
    const flagSpecs = { ...GLOBAL_FLAGS, ...(cmd?.flags ?? {}) };
    let parsed;
    try {
      parsed = parseArgs({
        args: rest,
        options: toParseOptions(flagSpecs),
        strict: true,
        allowPositionals: true,
      });
    } catch (err) {
      throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
    }
    const values = { ...(parsed.values as Record<string, string | boolean | undefined>) };
    for (const [name, spec] of Object.entries(flagSpecs)) {
      if (values[name] === undefined && spec.default !== undefined) values[name] = spec.default;
    }
    const fromEnv = globalsFromEnv(env);
    const globals: Record<string, string | boolean | undefined> = {};
    for (const name of Object.keys(GLOBAL_FLAGS)) {
      const explicit = (parsed.values as Record<string, unknown>)[name] !== undefined;
      globals[name] = explicit ? values[name] : (fromEnv[name] ?? values[name]);
    }
    if (globals.version === true) {
      io.out(`${prog} version ${(await import('../version.js')).VERSION}\n`);
      return 0;
    }
    if (!cmd || globals.help === true) {
      io.out(cmd ? commandHelp(prog, cmd) : globalHelp(prog));
      return 0;
    }
    const flags: Record<string, string | boolean | undefined> = {};
    for (const name of Object.keys(cmd.flags ?? {})) flags[name] = values[name];
    return await cmd.run({ prog, globals, flags, args: parsed.positionals, io });
  } catch (err) {
    if (err instanceof ApiError) {
      io.err(`Error: ${err.message}\n`);
      return err.status === 503 ? 2 : 1;
    }
    if (err instanceof FlotillaError) {
      io.err(`Error: ${err.message}\n`);
      if (err.code === 'E_USAGE') io.err(`Run '${prog} help' for usage.\n`);
      return err.exitCode;
    }
    throw err;
  }
}
