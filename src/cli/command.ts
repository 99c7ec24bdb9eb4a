/**
 * The CLI's command model: each command is a small object in src/cli/commands/, listed in
 * src/cli/commands/index.ts. main.ts parses global flags, resolves the command (exact name or a
 * unique prefix, like fleetctl's cobra prefix matching), parses its flags strictly and runs it.
 */
export interface FlagSpec {
  type: 'boolean' | 'string';
  short?: string;
  default?: string | boolean;
  help: string;
  /** Shown in help as the value name, e.g. `--lines=N`. */
  value?: string;
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
  args: string[];
  io: Io;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  flags?: Record<string, FlagSpec>;
  /** Hidden from the command list (deprecated or internal). */
  hidden?: boolean;
  run(ctx: Context): Promise<number>;
}
