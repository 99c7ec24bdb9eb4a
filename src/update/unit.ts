/**
 * The slot write as a throttled systemd transient unit: `flotilla-update-write.service`, Type=oneshot,
 * running the hidden `flotilla update write-slot …` with IOWeight=, CPUWeight=, Nice= and (when set)
 * IOWriteBandwidthMax= on the update disk, all from update.conf. Created over D-Bus through the
 * systemd driver (StartTransientUnit); the start job of a oneshot ends when the write does, so
 * `startTransient` resolving means the write succeeded, and a SystemdJobError carries its journal.
 * `systemctl status flotilla-update-write` shows the unit and its limits while it runs.
 */
import type { SystemdManager, TransientUnitSpec } from '../systemd/manager.js';
import type { UpdateConfig } from './config.js';
import type { SlotName } from './slots.js';

export const WRITE_UNIT = 'flotilla-update-write.service';

export interface WriteCommand {
  /** argv that runs the flotilla CLI, e.g. [process.execPath, '/usr/lib/flotilla/bin/flotilla']. */
  flotilla: readonly string[];
  disk: string;
  booted: SlotName;
}

/** The write-slot argv (no shell: every value is its own argument). */
export function writeSlotArgv(c: UpdateConfig, w: WriteCommand): string[] {
  const argv = [...w.flotilla, 'update', 'write-slot', `--disk=${w.disk}`, `--booted=${w.booted}`];
  argv.push(`--staging-dir=${c.stagingDir}`, `--keys-dir=${c.keysDir}`, `--board=${c.board}`);
  if (c.grubenv) argv.push(`--grubenv=${c.grubenv}`);
  const passive = w.booted === 'A' ? c.partitions.B : c.partitions.A;
  if (passive) argv.push(`--partition=${passive}`);
  if (c.writeRateLimit) argv.push(`--max-bytes-per-second=${c.writeRateLimit}`);
  return argv;
}

/** Pure: the transient unit for one write. */
export function writeUnitSpec(c: UpdateConfig, w: WriteCommand, name = WRITE_UNIT): TransientUnitSpec {
  const bwDevice = (w.booted === 'A' ? c.partitions.B : c.partitions.A) ?? w.disk;
  return {
    name,
    description: 'flotilla OS update: write the passive slot',
    command: writeSlotArgv(c, w),
    type: 'oneshot',
    ioWeight: c.ioWeight,
    cpuWeight: c.cpuWeight,
    nice: c.nice,
    ...(c.ioWriteBandwidthMax
      ? { ioWriteBandwidthMax: [{ device: bwDevice, bytesPerSecond: c.ioWriteBandwidthMax }] }
      : {}),
    collect: true,
  };
}

/** Run the write in its unit and wait for it (up to `timeoutMs`, default 2 h). */
export async function runWriteUnit(
  systemd: SystemdManager,
  spec: TransientUnitSpec,
  timeoutMs = 2 * 3600_000,
): Promise<void> {
  await systemd.startTransient(spec, { timeoutMs });
}
