/**
 * The error catalogue. Every error flotilla raises on purpose carries a stable code, an HTTP status
 * (for the API) and a CLI exit code. The table is the single place these are defined; README.md
 * ("Errors") documents it for operators. Use `isCode(err, 'E_…')` instead of matching messages.
 */
export const ERRORS = {
  E_USAGE: { http: 400, exit: 64, summary: 'bad command line: unknown command, flag or argument' },
  E_UNIT_NAME: { http: 400, exit: 1, summary: 'invalid unit name' },
  E_UNIT_PARSE: { http: 400, exit: 1, summary: 'invalid unit file body' },
  E_UNIT_OPTIONS: { http: 400, exit: 1, summary: 'invalid [X-Fleet] options or combination' },
  E_CONFIG: { http: 400, exit: 78, summary: 'invalid configuration' },
  E_NOT_FOUND: { http: 404, exit: 1, summary: 'no such object' },
  E_CONFLICT: { http: 409, exit: 1, summary: 'the object changed or exists already' },
  E_REGISTRY_UNAVAILABLE: { http: 503, exit: 2, summary: 'the registry cannot be reached' },
  E_REGISTRY_COMPACTED: { http: 410, exit: 1, summary: 'a watch asked for a revision that was compacted' },
  E_REGISTRY_CORRUPT: { http: 500, exit: 1, summary: 'the embedded registry data directory is damaged' },
  E_LEASE_NOT_FOUND: { http: 404, exit: 1, summary: 'the lease expired or was revoked' },
  E_CLOSED: { http: 503, exit: 1, summary: 'the component was closed' },
  E_INVALID_REQUEST: {
    http: 400,
    exit: 1,
    summary: 'the registry refused a malformed request (e.g. a duplicate key in one txn)',
  },
  E_SYSTEMD_UNAVAILABLE: { http: 503, exit: 2, summary: 'the system bus or systemd cannot be reached' },
  E_SYSTEMD_CALL: { http: 502, exit: 1, summary: 'a systemd D-Bus call returned an error' },
  E_SYSTEMD_JOB: { http: 500, exit: 1, summary: 'a systemd job ended with a result other than done' },
  E_SYSTEMD_NOT_OWNED: {
    http: 403,
    exit: 1,
    summary: 'the unit was not installed by flotilla, so flotilla will not touch it',
  },
  E_JOURNAL: { http: 500, exit: 1, summary: 'journalctl failed or could not be started' },
  E_DOCKER_UNAVAILABLE: { http: 503, exit: 2, summary: 'the Docker engine cannot be reached' },
  E_DOCKER_CALL: { http: 502, exit: 1, summary: 'a Docker engine call returned an error' },
  E_IMAGE_PULL: { http: 502, exit: 1, summary: 'pulling a container image failed' },
  E_CONTAINER_SPEC: { http: 400, exit: 1, summary: 'invalid [Container] section of a unit' },
  E_DOCKER_NOT_OWNED: {
    http: 403,
    exit: 1,
    summary: 'the container was not created by flotilla, so flotilla will not touch it',
  },
  E_SERVICE_SPEC: {
    http: 400,
    exit: 1,
    summary: 'invalid service name or NAME:PORT service spec (a Service= option or flotilla.service label)',
  },
  E_LOCK: {
    http: 409,
    exit: 1,
    summary:
      'the reboot lock (locksmith semaphore) refused: holder exists, semaphore is at 0, no such holder',
  },
  E_GPT: {
    http: 500,
    exit: 1,
    summary: 'the disk has no valid GUID partition table, or it cannot be read or written',
  },
  E_UPDATE_SLOTS: {
    http: 409,
    exit: 1,
    summary: 'the disk has no A/B slot pair (USR-A/USR-B or root-a/root-b)',
  },
  E_UPDATE_MANIFEST: {
    http: 400,
    exit: 1,
    summary: 'an update manifest is malformed, unsigned, or for another board or arch',
  },
  E_UPDATE_VERIFY: {
    http: 422,
    exit: 1,
    summary: 'an update payload failed its signature, size or SHA-256 check',
  },
  E_UPDATE_DOWNLOAD: { http: 502, exit: 1, summary: 'downloading an update failed or was cut short' },
  E_UPDATE_OMAHA: {
    http: 502,
    exit: 1,
    summary: 'the Omaha server answered with malformed, oversized or foreign XML, or an error status',
  },
  E_UPDATE_SPACE: {
    http: 507,
    exit: 1,
    summary: 'no room for the update (staging area or passive slot too small)',
  },
  E_CLOUDCONFIG: {
    http: 400,
    exit: 1,
    summary: 'a cloud-config is invalid (YAML, types, values) or cannot be applied; names the line or key',
  },
  E_IGNITION: {
    http: 400,
    exit: 1,
    summary: 'an Ignition config is invalid, of an unsupported version, or asks for what is not supported',
  },
  E_DATASOURCE: {
    http: 502,
    exit: 1,
    summary: 'a first-boot datasource (file, URL, config-drive, guestinfo, fw_cfg) cannot be read',
  },
  E_TARGET: {
    http: 500,
    exit: 1,
    summary: 'a first-boot action (file, user, unit, hostname) cannot be applied to the target root',
  },
  E_BACKUP: {
    http: 400,
    exit: 1,
    summary:
      'a registry backup file is missing, damaged, truncated or not a flotilla backup (names the file and the bad part)',
  },
  E_MIGRATE: {
    http: 502,
    exit: 1,
    summary:
      "migrate-from-fleet cannot read fleet's keys (etcd v2 API) or finds them malformed (names the key)",
  },
  E_ETCD_MEMBER: {
    http: 409,
    exit: 1,
    summary:
      'an etcd membership change was refused: the cluster is unhealthy (names the member), or the member is unknown or exists',
  },
  E_INSTALL: {
    http: 500,
    exit: 1,
    summary: 'installing or removing flotilla on this host failed or was refused (no systemd, old Node …)',
  },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export class FlotillaError extends Error {
  readonly code: ErrorCode;
  /** Extra structured facts (field, line, revision …); safe to log, never secrets. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'FlotillaError';
    this.code = code;
    this.details = details;
  }

  get httpStatus(): number {
    return ERRORS[this.code].http;
  }

  get exitCode(): number {
    return ERRORS[this.code].exit;
  }
}

export function isCode(err: unknown, code: ErrorCode): err is FlotillaError {
  return err instanceof FlotillaError && err.code === code;
}

/** errno guard: `isErrno(err, 'ENOENT')`. */
export function isErrno(err: unknown, errno: string): err is NodeJS.ErrnoException {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === errno;
}
