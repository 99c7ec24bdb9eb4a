/**
 * The CLI's command model. Each command is a small object in src/cli/commands/; the registry in
 * src/cli/commands/index.ts lists them by name and summary only and loads a command's module when
 * it runs, so `flotilla version` does not pay for the HTTP client, the unit parser or the agent.
 * main.ts parses global flags, resolves the command (exact name or a unique prefix, like fleetctl's
 * cobra prefix matching), loads it, parses its flags strictly and runs it.
 */
export interface FlagSpec {
  type: 'boolean' | 'string';
  short?: string;
  default?: string | boolean;
  help: string;
  /** Shown in help as the value name, e.g. `--lines=N`. */
  value?: string;
  /** Accepted but not listed in help or completion (deprecated spellings). */
  hidden?: boolean;
  /** This flag is another spelling of `alias` (e.g. --etcd-keyfile of --key-file). */
  alias?: string;
}

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

export interface Context {
  /** The name the CLI was called by: `flotilla` or `fleetctl`. */
  prog: string;
  globals: Record<string, string | boolean | undefined>;
  flags: Record<string, string | boolean | undefined>;
  /** Which flags were given on the command line (not defaults). */
  explicit: ReadonlySet<string>;
  args: string[];
  io: Io;
  /** The environment (PATH for `ssh`, HOME for `~`). */
  env: NodeJS.ProcessEnv;
  /** The command table (for `help` and `completion`, which list it: passed in, so no import cycle). */
  commands: readonly CommandEntry[];
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** Longer help text shown by `help COMMAND`. */
  description?: string;
  flags?: Record<string, FlagSpec>;
  /** Hidden from the command list (deprecated or internal). */
  hidden?: boolean;
  /**
   * Go-style flags: `-name[=value]` is read as `--name[=value]` for this command's long flags (and the
   * global ones), as Go's flag package allows (coreos-cloudinit's `-from-file`, `-validate`).
   */
  goFlags?: boolean;
  /** How positional arguments complete in the shell: units, machines, a fixed list, or files. */
  complete?: 'units' | 'machines' | 'unit-or-machine' | 'files' | readonly string[];
  run(ctx: Context): Promise<number>;
}

/** What the command registry knows before a command's module is loaded. */
export interface CommandEntry {
  name: string;
  summary: string;
  hidden?: boolean;
  load(): Promise<Command>;
}

/** A command by its name, or by a unique prefix of a visible one (fleetctl's lookup). */
export function findIn(
  commands: readonly CommandEntry[],
  word: string,
): CommandEntry | { ambiguous: string[] } | undefined {
  const exact = commands.find((c) => c.name === word);
  if (exact) return exact;
  if (word === '') return undefined;
  const matches = commands.filter((c) => !c.hidden && c.name.startsWith(word));
  if (matches.length === 1) return matches[0];
  if (matches.length > 1) return { ambiguous: matches.map((c) => c.name) };
  return undefined;
}

/**
 * A fleetctl-style failure: `message` goes to stderr as is (fleetctl prints its messages without an
 * "Error:" prefix), and the process exits with `exitCode` (fleetctl's code for that case).
 */
export class CliExit extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'CliExit';
  }
}

/** A bad command line: printed as `Error: <message>` plus a hint to run help; exit 64. */
export class UsageError extends CliExit {
  constructor(message: string) {
    super(64, message);
    this.name = 'UsageError';
  }
}
