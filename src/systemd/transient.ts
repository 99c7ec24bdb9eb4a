/**
 * Pure builders for `StartTransientUnit` / `SetUnitProperties` property lists.
 *
 * Output is `[name, { signature, value }]` pairs; the D-Bus driver wraps each value in a dbus-next
 * Variant. 64-bit properties are bigints here (the marshaller wants them exact). Every value is
 * range-checked (systemd's own limits) and a bad one is `E_USAGE`, before anything is sent.
 */
import { FlotillaError } from '../lib/errors.js';
import type { IOBandwidth, ResourceLimits, TransientUnitSpec } from './manager.js';

export interface PropValue {
  signature: string;
  value: unknown;
}
export type Prop = [string, PropValue];

const WEIGHT_MIN = 1;
const WEIGHT_MAX = 10_000;

function bad(msg: string, details: Record<string, unknown> = {}): FlotillaError {
  return new FlotillaError('E_USAGE', msg, details);
}

function weight(name: string, v: number): Prop {
  if (!Number.isInteger(v) || v < WEIGHT_MIN || v > WEIGHT_MAX)
    throw bad(`${name} must be an integer in 1..10000`, { [name]: v });
  return [name, { signature: 't', value: BigInt(v) }];
}

function bandwidth(name: string, list: readonly IOBandwidth[]): Prop {
  const value = list.map((b) => {
    if (
      typeof b.device !== 'string' ||
      !b.device.startsWith('/') ||
      b.device.includes('\0') ||
      b.device.length > 4096
    )
      throw bad(`${name}: device must be an absolute path`, { device: b.device });
    if (!Number.isSafeInteger(b.bytesPerSecond) || b.bytesPerSecond <= 0)
      throw bad(`${name}: bytesPerSecond must be a positive integer`, { bytesPerSecond: b.bytesPerSecond });
    return [b.device, BigInt(b.bytesPerSecond)];
  });
  return [name, { signature: 'a(st)', value }];
}

/** cgroup properties for limits (Nice excluded: it only applies when a process starts). */
export function resourceProperties(l: ResourceLimits): Prop[] {
  const out: Prop[] = [];
  if (l.cpuWeight !== undefined) out.push(weight('CPUWeight', l.cpuWeight));
  if (l.ioWeight !== undefined) out.push(weight('IOWeight', l.ioWeight));
  if (l.ioReadBandwidthMax !== undefined) out.push(bandwidth('IOReadBandwidthMax', l.ioReadBandwidthMax));
  if (l.ioWriteBandwidthMax !== undefined) out.push(bandwidth('IOWriteBandwidthMax', l.ioWriteBandwidthMax));
  if (l.memoryMax !== undefined) {
    if (l.memoryMax === 'infinity')
      out.push(['MemoryMax', { signature: 't', value: 0xffff_ffff_ffff_ffffn }]);
    else if (!Number.isSafeInteger(l.memoryMax) || l.memoryMax <= 0)
      throw bad('MemoryMax must be a positive integer (bytes) or "infinity"', { memoryMax: l.memoryMax });
    else out.push(['MemoryMax', { signature: 't', value: BigInt(l.memoryMax) }]);
  }
  return out;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The full property list for a transient service. */
export function transientProperties(spec: TransientUnitSpec): Prop[] {
  const argv = [...spec.command];
  const exe = argv[0];
  if (exe === undefined || !exe.startsWith('/'))
    throw bad('command[0] must be an absolute path', { command: argv });
  if (argv.some((a) => typeof a !== 'string' || a.includes('\0')))
    throw bad('command arguments must be strings without NUL');
  const out: Prop[] = [
    ['Description', { signature: 's', value: spec.description ?? `flotilla transient unit ${spec.name}` }],
    ['ExecStart', { signature: 'a(sasb)', value: [[exe, argv, false]] }],
  ];
  if (spec.type !== undefined) out.push(['Type', { signature: 's', value: spec.type }]);
  if (spec.remainAfterExit !== undefined)
    out.push(['RemainAfterExit', { signature: 'b', value: spec.remainAfterExit }]);
  if (spec.collect ?? true) out.push(['CollectMode', { signature: 's', value: 'inactive-or-failed' }]);
  if (spec.workingDirectory !== undefined) {
    if (!spec.workingDirectory.startsWith('/')) throw bad('workingDirectory must be absolute');
    out.push(['WorkingDirectory', { signature: 's', value: spec.workingDirectory }]);
  }
  if (spec.environment !== undefined) {
    const env = Object.entries(spec.environment).map(([k, v]) => {
      if (!ENV_NAME.test(k) || v.includes('\0')) throw bad(`bad environment variable ${JSON.stringify(k)}`);
      return `${k}=${v}`;
    });
    out.push(['Environment', { signature: 'as', value: env }]);
  }
  if (spec.nice !== undefined) {
    if (!Number.isInteger(spec.nice) || spec.nice < -20 || spec.nice > 19)
      throw bad('Nice must be an integer in -20..19', { nice: spec.nice });
    out.push(['Nice', { signature: 'i', value: spec.nice }]);
  }
  out.push(...resourceProperties(spec));
  return out;
}
