/**
 * Reading an Ignition config: size bound, JSON (syntax errors with line and column), version
 * dispatch, schema and semantic validation, refusals. The same code serves `ignition-validate` and
 * the boot stages (one validator).
 *
 * Versions: 3.0.0–3.4.0 are validated against their own schema; 2.0.0–2.3.0 are translated to the
 * 3.0 shape (translate2.ts). Like Ignition, the major version must be supported and the version no
 * later than the latest supported; `-experimental` versions are refused (they are not stable
 * specs), and so is 1.x (`ignitionVersion`) and anything unparsable.
 */
import { FlotillaError } from '../lib/errors.js';
import { semanticIssues } from './checks.js';
import { parseJsonWithPositions, type Position } from './jsonpos.js';
import { schemaErrors, unknownKeyWarnings } from './schema.js';
import { translate2x } from './translate2.js';
import { formatIssue, type IgnitionConfig, type Issue } from './types.js';

export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;
export const SUPPORTED_VERSIONS = [
  '2.0.0',
  '2.1.0',
  '2.2.0',
  '2.3.0',
  '3.0.0',
  '3.1.0',
  '3.2.0',
  '3.3.0',
  '3.4.0',
];

export interface Validation {
  /** The config in 3.x shape; undefined when it could not be read at all. */
  config?: IgnitionConfig;
  /** `ignition.version` as given. */
  version?: string;
  issues: Issue[];
}

function fatal(issues: Issue[], path: string, message: string, p?: Position): Validation {
  issues.push({ kind: 'error', path, ...(p ? { line: p.line, col: p.col } : {}), message });
  return { issues };
}

/** Validate `raw` completely; never throws for bad input (the issues say what is wrong). */
export function validateIgnition(raw: Buffer | string): Validation {
  const issues: Issue[] = [];
  const size = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.length;
  if (size > MAX_CONFIG_BYTES) {
    return fatal(issues, '$', `config is ${size} bytes, larger than the 16 MiB limit`);
  }
  const text = typeof raw === 'string' ? raw : raw.toString('utf8');
  if (text.trim() === '') return fatal(issues, '$', 'not a config (empty)');
  let value: unknown;
  let positions: Map<string, Position>;
  try {
    ({ value, positions } = parseJsonWithPositions(text));
  } catch (err) {
    if (!(err instanceof FlotillaError)) throw err;
    const { line, col } = err.details as { line: number; col: number };
    return fatal(
      issues,
      '$',
      err.message.replace(/^config is not valid JSON: line \d+ col \d+: /, 'invalid JSON: '),
      { line, col },
    );
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return fatal(issues, '$', 'config must be a JSON object', positions.get(''));
  }
  const obj = value as Record<string, unknown>;
  if ('ignitionVersion' in obj) {
    return fatal(
      issues,
      '$.ignitionVersion',
      `unsupported config version 1 (spec 1 is not supported; use ${SUPPORTED_VERSIONS.at(-1)})`,
      positions.get('/ignitionVersion'),
    );
  }
  const ign = obj.ignition as Record<string, unknown> | undefined;
  const version = ign && typeof ign === 'object' ? ign.version : undefined;
  if (typeof version !== 'string') {
    return fatal(
      issues,
      '$.ignition.version',
      version === undefined ? 'is required' : 'must be string',
      positions.get('/ignition/version') ?? positions.get(''),
    );
  }
  const m = /^(\d+)\.(\d+)\.(\d+)(-experimental)?$/.exec(version);
  if (!m)
    return fatal(
      issues,
      '$.ignition.version',
      `invalid config version ${JSON.stringify(version)} (couldn't parse)`,
      positions.get('/ignition/version'),
    );
  if (!SUPPORTED_VERSIONS.includes(version)) {
    const r = fatal(
      issues,
      '$.ignition.version',
      `unsupported config version ${JSON.stringify(version)} (supported: 3.0.0 to 3.4.0, and 2.0.0 to 2.3.0 translated)`,
      positions.get('/ignition/version'),
    );
    return { ...r, version };
  }
  let config: IgnitionConfig;
  if (m[1] === '2') {
    const t = translate2x(obj, positions);
    issues.push(...t.issues);
    if (t.issues.some((i) => i.kind === 'error')) return { version, issues };
    // The translation's output is checked as any 3.0 config would be.
    issues.push(...schemaErrors(0, t.config));
    config = t.config;
  } else {
    const minor = Number(m[2]);
    issues.push(...schemaErrors(minor, value, positions), ...unknownKeyWarnings(minor, value, positions));
    if (issues.some((i) => i.kind === 'error')) return { version, issues };
    config = value as IgnitionConfig;
  }
  issues.push(...semanticIssues(config, m[1] === '2' ? undefined : positions));
  return { config, version, issues };
}

export interface Parsed {
  config: IgnitionConfig;
  version: string;
  warnings: Issue[];
}

/** Validate and return the config, or throw E_IGNITION listing every error (`$.path: message`). */
export function parseIgnition(raw: Buffer | string, what = 'config'): Parsed {
  const v = validateIgnition(raw);
  const errors = v.issues.filter((i) => i.kind === 'error');
  if (errors.length > 0 || !v.config || v.version === undefined) {
    const lines = errors.map(
      (e) => `${e.path}: ${e.message}${e.line === undefined ? '' : ` (line ${e.line} col ${e.col})`}`,
    );
    throw new FlotillaError('E_IGNITION', `${what} is invalid: ${lines.join('; ')}`, {
      errors: errors.map(formatIssue),
    });
  }
  return { config: v.config, version: v.version, warnings: v.issues.filter((i) => i.kind === 'warning') };
}
