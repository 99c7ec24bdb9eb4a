/**
 * `flotilla update status|check|apply|slots|mark-good|rollback|reset-status|keygen|make-bundle`,
 * also installed as `update_engine_client` (argv[0] dispatch in main.ts, flags mapped by
 * `updateEngineClientArgv`), plus the hidden `write-slot` the throttled transient unit runs.
 *
 *   status        update_engine_client -status: LAST_CHECKED_TIME= PROGRESS= CURRENT_OP= NEW_VERSION= NEW_SIZE=
 *   watch         update_engine_client -watch_for_updates: a "Got status update:" block per change
 *   check         fetch and verify the manifest; says whether an update is available
 *   apply         check, download, verify, write the passive slot, need-reboot (exit 0 also when
 *                 there is no update; `update_engine_client -update` exits 1 then, as the original)
 *   slots         the A/B slots as `cgpt show` lists them
 *   mark-good     the booted slot becomes successful (the agent does this once healthy)
 *   rollback      the other slot boots next (it must have been marked good)
 *   keygen PATH   PATH.key (0600) and PATH.pub, an ed25519 signing key pair
 *   make-bundle --key K --version V [--board B --arch A --compression C] IMAGE OUTDIR
 *
 * Settings come from /etc/flotilla/update.conf (src/update/config.ts); flags override the disk,
 * the booted slot, grubenv, staging and keys directories.
 */
import { spawn } from 'node:child_process';
import { realpathSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfig } from '../../daemon/config.js';
import { FlotillaError } from '../../lib/errors.js';
import { writeAtomic } from '../../lib/fs.js';
import { REBOOT_REQUIRED } from '../../locksmith/manager.js';
import { COMPRESSIONS, generateSigningKey, hostArch, type Compression } from '../../update/bundle.js';
import { loadUpdateConfig, requireDisk, type UpdateConfig } from '../../update/config.js';
import { bootedSlot, markGoodOnDisk, openSlotDisk, rollbackOnDisk } from '../../update/disk-ops.js';
import {
  applyUpdate,
  checkForUpdate,
  resetStatus,
  type EngineDeps,
  type SlotWriter,
} from '../../update/engine.js';
import { readGpt, openDisk } from '../../update/gpt.js';
import { loadTrustedKeys } from '../../update/keys.js';
import { makeBundle, readKeyFile } from '../../update/make-bundle.js';
import { formatSlots } from '../../update/slots.js';
import { omahaSource } from '../../update/omaha.js';
import { formatStatus, readState, type EngineState } from '../../update/state.js';
import { runWriteUnit, writeUnitSpec } from '../../update/unit.js';
import { writeSlot } from '../../update/write.js';
import { CliExit, UsageError, type Command, type Context } from '../command.js';

const SUBS = [
  'status',
  'watch',
  'check',
  'apply',
  'slots',
  'mark-good',
  'rollback',
  'reset-status',
  'keygen',
  'make-bundle',
] as const;

/** update_engine_client's single-dash flags as `update` subcommands. */
export function updateEngineClientArgv(argv: readonly string[]): string[] {
  const map: Record<string, string[]> = {
    status: ['status'],
    check_for_update: ['apply', '--background'],
    update: ['apply', '--exit-1-when-idle'],
    reset_status: ['reset-status'],
    watch_for_updates: ['watch'],
  };
  const out: string[] = [];
  for (const a of argv) {
    const m = /^--?([a-z_]+)$/.exec(a);
    const sub = m ? map[m[1]!] : undefined;
    if (!sub)
      throw new UsageError(
        `update_engine_client: unsupported flag ${a} (-status, -check_for_update, -update, -reset_status, -watch_for_updates)`,
      );
    out.push(...sub);
  }
  if (out.length === 0) out.push('status');
  return ['update', ...out];
}

/** argv that runs this CLI again (the installed bin, or tsx from source in tests). */
function selfArgv(): string[] {
  // Absolute: the unit runs from / (a relative `--import tsx` only works in tests started in the repo).
  // Real path: run as the `update_engine_client` symlink, argv[1] names the link, and the child
  // (`update apply`, `update write-slot …`) would be parsed as update_engine_client flags.
  const self = resolve(process.argv[1]!);
  let real = self;
  try {
    real = realpathSync(self);
  } catch {
    /* keep the path as given */
  }
  return [process.execPath, ...process.execArgv, real];
}

function str(ctx: Context, name: string): string | undefined {
  const v = ctx.flags[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function configOf(ctx: Context): UpdateConfig {
  // The write throttle may also come from flotilla.conf (update_* keys); update.conf wins.
  const agent = loadConfig({ env: ctx.env, flags: {} }).config;
  const c = loadUpdateConfig(ctx.env, str(ctx, 'config'), undefined, agent);
  const disk = str(ctx, 'disk');
  const grubenv = str(ctx, 'grubenv');
  return {
    ...c,
    ...(disk ? { disk } : {}),
    ...(grubenv ? { grubenv } : {}),
    stagingDir: str(ctx, 'staging-dir') ?? c.stagingDir,
    keysDir: str(ctx, 'keys-dir') ?? c.keysDir,
    board: str(ctx, 'board') ?? c.board,
  };
}

function needReboot(): void {
  writeFileSync(REBOOT_REQUIRED, '*** System restart required ***\n', { mode: 0o644 });
}

async function unitWriter(c: UpdateConfig, ctx: Context): Promise<SlotWriter> {
  if (!c.transientUnit) {
    return async ({ disk, booted }) => {
      await writeSlot({
        disk,
        booted,
        stagingDir: c.stagingDir,
        keys: loadTrustedKeys(c.keysDir),
        board: c.board,
        ...(c.grubenv ? { grubenv: c.grubenv } : {}),
        ...(c.writeRateLimit ? { maxBytesPerSecond: c.writeRateLimit } : {}),
        ...((booted === 'A' ? c.partitions.B : c.partitions.A)
          ? { partitionDevice: (booted === 'A' ? c.partitions.B : c.partitions.A)! }
          : {}),
      });
    };
  }
  const { DbusSystemdManager } = await import('../../systemd/dbus-manager.js');
  return async ({ disk, booted }) => {
    const systemd = await DbusSystemdManager.connect({ env: ctx.env });
    try {
      await runWriteUnit(systemd, writeUnitSpec(c, { flotilla: selfArgv(), disk, booted }));
    } finally {
      await systemd.close();
    }
  };
}

async function run(ctx: Context): Promise<number> {
  const sub = ctx.args[0];
  const { out } = ctx.io;
  if (sub === 'write-slot') {
    const c = configOf(ctx);
    const r = await writeSlot({
      disk: requireDisk(c),
      stagingDir: c.stagingDir,
      keys: loadTrustedKeys(c.keysDir),
      board: c.board,
      ...(str(ctx, 'booted') ? { booted: str(ctx, 'booted')! } : {}),
      ...(c.grubenv ? { grubenv: c.grubenv } : {}),
      ...(str(ctx, 'partition') ? { partitionDevice: str(ctx, 'partition')! } : {}),
      ...(str(ctx, 'max-bytes-per-second')
        ? { maxBytesPerSecond: Number(str(ctx, 'max-bytes-per-second')) }
        : {}),
      onProgress: (p) => {
        if (ctx.flags['progress'] === true) out(`${p.phase} ${p.bytes} ${p.total}\n`);
      },
    });
    out(`slot ${r.slot}: version ${r.version} written and verified (${r.bytes} bytes)\n`);
    return 0;
  }
  if (sub === undefined || !(SUBS as readonly string[]).includes(sub)) {
    if (sub !== undefined) ctx.io.err(`Unknown update command: ${sub}\n`);
    out(`Usage: ${update.usage}\n`);
    return sub === undefined ? 2 : 64;
  }
  switch (sub) {
    case 'status': {
      out(formatStatus(readState(configOf(ctx).stagingDir)));
      return 0;
    }
    case 'watch': {
      const dir = configOf(ctx).stagingDir;
      const max = Number(str(ctx, 'count') ?? '0');
      // As update_engine_client: nothing until the first StatusUpdate signal (a change of the
      // state), then one block per signal; its "Watching…" log line went to stderr.
      let last = formatWatch(readState(dir));
      let shown = 0;
      ctx.io.err('Watching for status updates.\n');
      for (;;) {
        await new Promise((r) => setTimeout(r, 100));
        const text = formatWatch(readState(dir));
        if (text !== last) {
          out(text);
          last = text;
          if (max > 0 && ++shown >= max) return 0;
        }
      }
    }
    case 'keygen': {
      const base = ctx.args[1];
      if (!base) throw new UsageError('update keygen PATH (writes PATH.key and PATH.pub)');
      const k = generateSigningKey();
      writeAtomic(`${base}.key`, k.privatePem, { mode: 0o600 });
      writeAtomic(`${base}.pub`, k.publicPem, { mode: 0o644 });
      out(
        `keyid ${k.keyid}: ${base}.key (private, 0600), ${base}.pub (install in /etc/flotilla/update-keys/)\n`,
      );
      return 0;
    }
    case 'make-bundle': {
      const [, image, outDir] = ctx.args;
      const key = str(ctx, 'key');
      const version = str(ctx, 'version');
      if (!image || !outDir || !key || !version)
        throw new UsageError(
          'update make-bundle --key KEY --version V [--board B] [--arch A] [--compression C] IMAGE OUTDIR',
        );
      const compression = (str(ctx, 'compression') ?? 'gzip') as Compression;
      if (!COMPRESSIONS.includes(compression))
        throw new UsageError(`--compression must be one of ${COMPRESSIONS.join(', ')}`);
      const r = await makeBundle({
        image,
        outDir,
        key: readKeyFile(key),
        version,
        board: str(ctx, 'board') ?? 'amd64-usr',
        arch: str(ctx, 'arch') ?? hostArch(),
        compression,
      });
      out(`${r.manifestPath}\n${r.payloadPath}\n`);
      return 0;
    }
    case 'slots': {
      const c = configOf(ctx);
      const disk = await openDisk(requireDisk(c));
      try {
        out(formatSlots(await readGpt(disk), disk.path));
      } finally {
        await disk.close();
      }
      return 0;
    }
    case 'mark-good':
    case 'rollback': {
      const c = configOf(ctx);
      const sd = await openSlotDisk(requireDisk(c), c.grubenv ? { grubenv: c.grubenv } : {});
      try {
        const booted = bootedSlot(sd, str(ctx, 'booted'));
        const f = sub === 'mark-good' ? await markGoodOnDisk(sd, booted) : await rollbackOnDisk(sd, booted);
        for (const n of ['A', 'B'] as const)
          out(`${n}: priority=${f[n].priority} tries=${f[n].tries} successful=${f[n].successful ? 1 : 0}\n`);
      } finally {
        await sd.disk.close();
      }
      return 0;
    }
    case 'reset-status': {
      out(formatStatus(resetStatus(deps(ctx, configOf(ctx)))));
      return 0;
    }
    case 'check': {
      const c = configOf(ctx);
      const r = await checkForUpdate(deps(ctx, c));
      out(
        r.available
          ? `Update available: ${r.manifest!.version} (${r.manifest!.size} bytes)\n`
          : 'No update available\n',
      );
      return 0;
    }
    case 'apply': {
      if (ctx.flags['background'] === true) {
        const child = spawn(selfArgv()[0]!, [...selfArgv().slice(1), 'update', 'apply'], {
          detached: true,
          stdio: 'ignore',
          env: ctx.env,
        });
        child.unref();
        return 0;
      }
      const c = configOf(ctx);
      // A progress line on a terminal (update_engine_client printed none; runbooks parse stdout only).
      const tty = process.stderr.isTTY;
      let shown = '';
      const s = await applyUpdate({
        ...deps(ctx, c),
        writer: await unitWriter(c, ctx),
        needReboot,
        onState: (st) => {
          if (!tty) return;
          const line = `${st.status.replace('UPDATE_STATUS_', '')} ${(st.progress * 100).toFixed(0)}%`;
          if (line !== shown)
            ctx.io.err(
              `\r${line.padEnd(40)}${st.status === 'UPDATE_STATUS_UPDATED_NEED_REBOOT' ? '\n' : ''}`,
            );
          shown = line;
        },
      });
      if (s.status === 'UPDATE_STATUS_UPDATED_NEED_REBOOT') {
        out(`Update installed (${s.newVersion}, slot ${s.slot ?? '?'}): reboot needed\n`);
        return 0;
      }
      out('No update available\n');
      return ctx.flags['exit-1-when-idle'] === true ? 1 : 0;
    }
  }
  return 64;
}

/**
 * A double as C++ `ostream << double` prints it (printf %g, 6 significant digits): 0, 0.5,
 * 0.0337457, 1, 1e-05. update_engine_client's handler streamed the progress that way.
 */
export function cppDouble(x: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  if (x === 0) return '0';
  const exp = Math.floor(Math.log10(Math.abs(Number(x.toPrecision(6)))));
  if (exp < -4 || exp >= 6) {
    const [m, e] = x.toExponential(5).split('e') as [string, string];
    const mant = m.includes('.') ? m.replace(/0+$/, '').replace(/\.$/, '') : m;
    const n = Number(e);
    return `${mant}e${n < 0 ? '-' : '+'}${String(Math.abs(n)).padStart(2, '0')}`;
  }
  return String(Number(x.toPrecision(6)));
}

/**
 * update_engine_client -watch_for_updates: what its StatusUpdate handler printed for one signal
 * (`watch` prints one per change of the persisted state; progress is throttled as the signal was).
 */
export function formatWatch(s: EngineState): string {
  return (
    'Got status update:\n' +
    `  last_checked_time: ${s.lastCheckedTime}\n` +
    `  progress: ${cppDouble(s.progress)}\n` +
    `  current_operation: ${s.status}\n` +
    `  new_version: ${s.newVersion}\n` +
    `  new_size: ${s.newSize}\n`
  );
}

function deps(ctx: Context, c: UpdateConfig): EngineDeps {
  const booted = str(ctx, 'booted');
  return {
    config: c,
    keys: loadTrustedKeys(c.keysDir),
    ...(booted ? { booted } : {}),
    ...(c.omaha
      ? {
          source: omahaSource({
            url: c.omaha.url,
            ...(c.omaha.appid ? { appid: c.omaha.appid } : {}),
            version: c.currentVersion,
            track: c.group,
            board: c.board,
            arch: hostArch(),
            stagingDir: c.stagingDir,
            interactive: true,
          }),
        }
      : {}),
  };
}

export const update: Command = {
  name: 'update',
  summary: 'A/B OS updates (update_engine_client): status, check, apply, slots, mark-good, rollback',
  usage:
    'update status | watch | check | apply | slots | mark-good | rollback | reset-status | keygen PATH | make-bundle --key K --version V IMAGE OUTDIR',
  flags: {
    config: {
      type: 'string',
      value: 'FILE',
      help: 'update.conf to read (default /etc/flotilla/update.conf)',
    },
    disk: { type: 'string', value: 'DEV', help: 'The disk (or image file) with the A/B slots (UPDATE_DISK)' },
    booted: { type: 'string', value: 'A|B', help: 'The running slot (default: from /proc/cmdline)' },
    grubenv: {
      type: 'string',
      value: 'FILE',
      help: 'The grubenv that mirrors the slot flags (UPDATE_GRUBENV)',
    },
    'staging-dir': { type: 'string', value: 'DIR', help: 'Download staging directory (UPDATE_STAGING_DIR)' },
    'keys-dir': { type: 'string', value: 'DIR', help: 'Trusted update keys (UPDATE_KEYS_DIR)' },
    board: { type: 'string', value: 'NAME', help: "This machine's board, or the bundle's (make-bundle)" },
    key: { type: 'string', value: 'FILE', help: 'make-bundle: the private signing key' },
    version: { type: 'string', value: 'V', help: 'make-bundle: the OS version in the image' },
    arch: { type: 'string', value: 'ARCH', help: 'make-bundle: the architecture (default this one)' },
    compression: {
      type: 'string',
      value: 'raw|gzip|zstd',
      help: 'make-bundle: payload compression (default gzip)',
    },
    partition: {
      type: 'string',
      value: 'DEV',
      hidden: true,
      help: 'write-slot: the passive partition device',
    },
    'max-bytes-per-second': {
      type: 'string',
      value: 'N',
      hidden: true,
      help: 'write-slot: userland rate limit',
    },
    progress: { type: 'boolean', default: false, hidden: true, help: 'write-slot: print progress lines' },
    count: { type: 'string', value: 'N', hidden: true, help: 'watch: exit after N status blocks' },
    background: {
      type: 'boolean',
      default: false,
      hidden: true,
      help: 'apply: start it detached and return',
    },
    'exit-1-when-idle': {
      type: 'boolean',
      default: false,
      hidden: true,
      help: 'apply: exit 1 when no update',
    },
  },
  complete: [...SUBS],
  run(ctx) {
    return run(ctx).catch((err: unknown) => {
      if (err instanceof FlotillaError)
        throw new CliExit(err.exitCode, `update: ${err.code}: ${err.message}`);
      throw err;
    });
  },
};
