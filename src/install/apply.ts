/**
 * The dumb half of `flotilla install` / `uninstall`: observe the host for the planner (plan.ts),
 * then apply its actions in order with an undo log. Anything a step would overwrite or remove is
 * first renamed aside; when a step fails, every step done so far is undone in reverse (new files
 * removed, the renamed originals put back, `systemctl` undo commands run), so a failure leaves the
 * host as it was. Only after the last step are the set-aside originals deleted. systemctl is run
 * with fixed argv arrays (no shell).
 */
import { execFile, execFileSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { FlotillaError, isErrno } from '../lib/errors.js';
import { writeAtomic } from '../lib/fs.js';
import {
  COMMAND_NAMES,
  MANIFEST,
  UNIT_NAMES,
  type Action,
  type InstallObserved,
  type PathState,
  type Plan,
  type UninstallObserved,
} from './plan.js';

export function pathState(p: string): PathState {
  try {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return { kind: 'link', target: readlinkSync(p) };
    return st.isDirectory() ? { kind: 'dir' } : { kind: 'file' };
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return { kind: 'absent' };
    throw err;
  }
}

function readOrUndefined(p: string): string | undefined {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return undefined;
  }
}

export function readManifest(path: string): Plan['manifest'] | undefined {
  const text = readOrUndefined(path);
  if (text === undefined) return undefined;
  try {
    const m = JSON.parse(text) as Plan['manifest'];
    if (typeof m.tree === 'string' && Array.isArray(m.links) && Array.isArray(m.units)) return m;
  } catch {
    /* a damaged manifest counts as none */
  }
  return undefined;
}

/** dpkg has a `flotilla` package installed (its file list exists). */
export function dpkgInstalled(admindir = '/var/lib/dpkg'): boolean {
  return existsSync(join(admindir, 'info', 'flotilla.list'));
}

export function observeInstall(opts: {
  source: string;
  prefix: string;
  unitDir: string;
  configFile: string;
}): InstallObserved {
  const { source } = opts;
  const files = [
    'dist/cli/main.js',
    'libexec/flotilla',
    'bin/flotilla',
    'share/flotilla.conf',
    ...UNIT_NAMES.map((u) => `systemd/${u}`),
  ];
  const sourceHas = new Set(files.filter((f) => existsSync(join(source, f))));
  const bundled = join(source, 'node', 'bin', 'node');
  const bundledNode = existsSync(bundled);
  let nodeVersion: string | undefined = process.version;
  if (bundledNode) {
    try {
      nodeVersion = execFileSync(bundled, ['--version'], { encoding: 'utf8', timeout: 20_000 });
    } catch {
      nodeVersion = undefined;
    }
  }
  const prefix = opts.prefix === '/' ? '' : opts.prefix.replace(/\/$/, '');
  const tree = `${prefix}/lib/flotilla`;
  const paths = new Map<string, PathState>();
  for (const p of [
    tree,
    ...COMMAND_NAMES.map((n) => `${prefix}/bin/${n}`),
    ...UNIT_NAMES.map((u) => `${opts.unitDir}/${u}`),
  ]) {
    paths.set(p, pathState(p));
  }
  return {
    uid: process.getuid?.() ?? -1,
    systemdRunning: existsSync('/run/systemd/system'),
    source,
    sourceHas,
    nodeVersion,
    bundledNode,
    defaultConfig: readOrUndefined(join(source, 'share', 'flotilla.conf')),
    existingConfig: readOrUndefined(opts.configFile),
    dpkgInstalled: dpkgInstalled(),
    paths,
    previous: readManifest(join(tree, MANIFEST)),
  };
}

export function observeUninstall(source: string): UninstallObserved {
  const manifestPath = join(source, MANIFEST);
  return {
    uid: process.getuid?.() ?? -1,
    systemdRunning: existsSync('/run/systemd/system'),
    dpkgInstalled: dpkgInstalled(),
    manifest: readManifest(manifestPath),
    manifestPath,
  };
}

export type Systemctl = (argv: string[]) => Promise<void>;

export const systemctl: Systemctl = (argv) =>
  new Promise((resolve, reject) => {
    execFile('systemctl', argv, { timeout: 120_000 }, (err, _out, stderr) => {
      if (err) reject(new Error(`systemctl ${argv.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });

export interface ApplyOptions {
  systemctl?: Systemctl;
  /** Called before each step (the CLI prints it). */
  step?: (a: Action) => void;
  /** Called for each undo step after a failure. */
  undone?: (what: string) => void;
}

/** Apply the actions; on a failure undo them all and throw E_INSTALL naming the step and cause. */
export async function applyActions(actions: readonly Action[], opts: ApplyOptions = {}): Promise<void> {
  const run = opts.systemctl ?? systemctl;
  const undo: { what: string; fn: () => Promise<void> | void }[] = [];
  const aside: string[] = [];
  const setAside = (p: string) => {
    if (pathState(p).kind === 'absent') return;
    const to = `${p}.flotilla-undo-${process.pid}`;
    rmSync(to, { recursive: true, force: true });
    renameSync(p, to);
    aside.push(to);
    undo.push({ what: `restore ${p}`, fn: () => renameSync(to, p) });
  };
  for (const [i, a] of actions.entries()) {
    opts.step?.(a);
    try {
      switch (a.kind) {
        case 'remove':
          setAside(a.path);
          break;
        case 'mkdir': {
          const made = mkdirSync(a.path, { recursive: true, mode: a.mode });
          if (made !== undefined)
            undo.push({ what: `remove ${made}`, fn: () => rmSync(made, { recursive: true, force: true }) });
          break;
        }
        case 'copy-tree': {
          setAside(a.to);
          const tmp = `${a.to}.flotilla-new-${process.pid}`;
          rmSync(tmp, { recursive: true, force: true });
          mkdirSync(join(a.to, '..'), { recursive: true, mode: 0o755 });
          undo.push({ what: `remove ${tmp}`, fn: () => rmSync(tmp, { recursive: true, force: true }) });
          cpSync(a.from, tmp, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
          renameSync(tmp, a.to);
          undo.push({ what: `remove ${a.to}`, fn: () => rmSync(a.to, { recursive: true, force: true }) });
          break;
        }
        case 'write':
          setAside(a.path);
          undo.push({ what: `remove ${a.path}`, fn: () => rmSync(a.path, { force: true }) });
          writeAtomic(a.path, a.content, { mode: a.mode });
          break;
        case 'link':
          setAside(a.path);
          symlinkSync(a.target, a.path);
          undo.push({ what: `remove ${a.path}`, fn: () => rmSync(a.path, { force: true }) });
          break;
        case 'systemctl': {
          const back = a.undo;
          if (back) {
            const u = { what: `systemctl ${back.join(' ')}`, fn: () => run(back) };
            // A reload undoes best after the unit files are gone again: it runs last.
            if (back[0] === 'daemon-reload') undo.unshift(u);
            else undo.push(u);
          }
          await run(a.argv);
          break;
        }
      }
    } catch (err) {
      for (const u of undo.reverse()) {
        try {
          await u.fn();
          opts.undone?.(u.what);
        } catch (e) {
          opts.undone?.(`${u.what} FAILED: ${(e as Error).message}`);
        }
      }
      const target = 'path' in a ? a.path : 'to' in a ? a.to : `systemctl ${a.argv.join(' ')}`;
      throw new FlotillaError(
        'E_INSTALL',
        `step ${i + 1}/${actions.length} (${a.reason}: ${target}) failed: ${(err as Error).message}; every earlier step was undone`,
        { step: i + 1, path: target },
      );
    }
  }
  for (const p of aside) rmSync(p, { recursive: true, force: true });
}
