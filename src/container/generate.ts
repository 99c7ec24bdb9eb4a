/**
 * A container unit becomes a real systemd service (after Podman Quadlet): the agent writes the
 * validated [Container] section as a JSON run spec (atomically, never a command line) and installs a
 * generated service that runs it under systemd's supervision:
 *
 *   [Service]
 *   Type=notify                      READY=1 once the container runs (start ordering, blocking start)
 *   NotifyAccess=all
 *   ExecStart=<node> <flotilla>/dist/container/runner-main.js run <spec.json>
 *   ExecStopPost=-<node> <flotilla>/dist/container/runner-main.js cleanup <spec.json>
 *   KillMode=mixed                   SIGTERM to the runner only; it stops the container gracefully
 *   TimeoutStopSec=<StopTimeout + 30>
 *   SyslogIdentifier=<unit name without .service>
 *
 * (runner-main.js is `flotilla container run|cleanup` without loading the rest of the CLI.)
 * Everything else of the unit is kept as written ([Unit], the rest of [Service] such as Restart=,
 * [Install], [X-Fleet]); the [Container] section is kept as [X-Container] (systemd ignores X-
 * sections) and [X-Flotilla] records the hash of the unit as submitted, so the agent recognises
 * the installed file after a restart. Pure.
 *
 * Secrets: the generated service is world-readable (0644, like every unit file; `systemctl cat`
 * shows it to any user), so the `Environment=` lines of [Container] are NOT copied into it. Their
 * values live only in the run spec (0600, root), which the runner reads; the service names the
 * variables (`[X-Flotilla] EnvironmentNames=`) so an operator still sees what is set.
 */
import { UnitFile, type UnitOption } from '../unit/index.js';
import { CONTAINER_SECTION, type ContainerSpec } from './spec.js';

export const GENERATED_SECTION = 'X-Flotilla';
export const KEPT_CONTAINER_SECTION = `X-${CONTAINER_SECTION}`;

/** What the runner (`flotilla container run`) reads. Written by the agent, 0600, atomically. */
export interface RunSpec {
  version: 1;
  unit: string;
  /** Hash of the unit as submitted (label flotilla.unit-hash). */
  unitHash: string;
  machineID: string;
  dockerSocket: string;
  /** Where the runner records its phase and the reason of a failure (read by the agent). */
  statusFile: string;
  container: ContainerSpec;
}

export interface GenerateOptions {
  /** Absolute path of the node binary. */
  node: string;
  /** Absolute path of the runner entry (dist/container/runner-main.js). */
  entry: string;
  /** Absolute path of the run spec file. */
  specPath: string;
}

/** A file name for a unit's spec/status files: [A-Za-z0-9_.@-] kept, anything else `_XX` (hex). */
export function safeFileName(unit: string): string {
  return unit.replace(/[^A-Za-z0-9.@-]|_/g, (c) => `_${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * One ExecStart= word, quoted for systemd when needed: specifiers (%) and variables ($) are escaped
 * so the path reaches the process byte for byte.
 */
export function systemdWord(arg: string): string {
  if (/^[A-Za-z0-9_./:@+=,-]+$/.test(arg)) return arg;
  return `"${arg.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%').replace(/\$/g, '$$$$')}"`;
}

function command(opts: GenerateOptions, verb: string): string {
  return [opts.node, opts.entry, verb, opts.specPath].map(systemdWord).join(' ');
}

/** The generated service for container unit `unit` (the unit as submitted) with its parsed spec. */
export function generateContainerService(
  unitName: string,
  unit: UnitFile,
  spec: ContainerSpec,
  opts: GenerateOptions,
): UnitFile {
  const out: UnitOption[] = [];
  const kept: UnitOption[] = [];
  const has = (section: string, name: string) =>
    unit.options.some((o) => o.section === section && o.name === name);
  for (const o of unit.options) {
    if (o.section !== CONTAINER_SECTION) out.push({ ...o });
    // Values may be secrets: they stay in the 0600 run spec.
    else if (o.name !== 'Environment')
      kept.push({ section: KEPT_CONTAINER_SECTION, name: o.name, value: o.value });
  }
  const unitOpts: UnitOption[] = [];
  if (!has('Unit', 'Description'))
    unitOpts.push({ section: 'Unit', name: 'Description', value: `Container ${spec.name} (${spec.image})` });
  // Stopped before the engine at shutdown.
  unitOpts.push({ section: 'Unit', name: 'After', value: 'docker.service' });
  const svc = (name: string, value: string): UnitOption => ({ section: 'Service', name, value });
  const service: UnitOption[] = [
    svc('Type', 'notify'),
    svc('NotifyAccess', 'all'),
    svc('ExecStart', command(opts, 'run')),
    svc('ExecStopPost', `-${command(opts, 'cleanup')}`),
    svc('KillMode', 'mixed'),
  ];
  if (!has('Service', 'TimeoutStopSec')) service.push(svc('TimeoutStopSec', String(spec.stopTimeout + 30)));
  if (!has('Service', 'SyslogIdentifier'))
    service.push(svc('SyslogIdentifier', unitName.replace(/\.service$/, '')));
  const marker: UnitOption[] = [
    { section: GENERATED_SECTION, name: 'SourceHash', value: unit.hash() },
    { section: GENERATED_SECTION, name: 'Spec', value: opts.specPath },
  ];
  const envNames = [...new Set(spec.environment.map(([k]) => k))];
  if (envNames.length > 0)
    marker.push({ section: GENERATED_SECTION, name: 'EnvironmentNames', value: envNames.join(' ') });
  // Sections in a stable order: [Unit] first, then the unit's own sections, [Service] with ours
  // appended, [X-Container], [X-Flotilla].
  return UnitFile.fromOptions([...unitOpts, ...out, ...service, ...kept, ...marker]);
}

/**
 * The hash the agent tracks for an installed file: the submitted unit's hash for a generated
 * container service, the file's own hash otherwise.
 */
export function installedHash(file: UnitFile): string {
  return file.get(GENERATED_SECTION, 'SourceHash') ?? file.hash();
}

/** Is this installed file a generated container service? */
export function isGeneratedService(file: UnitFile): boolean {
  return file.get(GENERATED_SECTION, 'SourceHash') !== undefined;
}
