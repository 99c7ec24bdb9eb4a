/**
 * The CLI's client for the agent API: fleet's `--endpoint` (unix://, file://, http://, https:// with
 * fleet's TLS flags `--ca-file`, `--cert-file`, `--key-file`), `--request-timeout`, and `--tunnel`
 * (every connection goes through `ssh HOST fleetctl fd-forward SOCKET`, as fleetctl did). JSON
 * requests come back parsed; a streaming request hands over the response once its headers are in.
 * Errors: ApiError (the server answered 4xx/5xx, with fleet's error message) or UnreachableError
 * (no answer: connection refused, timed out, TLS refused).
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import type { Duplex } from 'node:stream';
import { CliExit } from './command.js';
import { secondsFlag } from './globals.js';
import { DEFAULT_API_ENDPOINT } from '../lib/paths.js';

export interface ClientOptions {
  endpoint: string;
  timeoutMs: number;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** Reach a unix endpoint through an SSH bastion: a connection factory (see tunnel.ts). */
  connect?: () => Duplex;
}

/** The API answered with an error status; `message` is fleet's error message from the body. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The API could not be reached (or did not answer in time). */
export class UnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnreachableError';
  }
}

export class ApiClient {
  private readonly base: RequestOptions;
  private readonly https: boolean;
  readonly endpoint: string;

  constructor(private readonly opts: ClientOptions) {
    const first = opts.endpoint.split(',')[0]!.trim();
    this.endpoint = first;
    let url: URL;
    try {
      url = new URL(first);
    } catch {
      throw new CliExit(
        1,
        `Unable to initialize client: ${JSON.stringify(first)} is not a URL (unix:///var/run/fleet.sock, http://host:port)`,
      );
    }
    const read = (flag: string, p?: string): Buffer | undefined => {
      if (!p) return undefined;
      try {
        return readFileSync(p);
      } catch (err) {
        throw new CliExit(1, `Unable to initialize client: --${flag}: ${(err as Error).message}`);
      }
    };
    if (url.protocol === 'unix:' || url.protocol === 'file:') {
      // fleetctl: "unix://var/run/fleet.sock" parses as host "var", which it refuses.
      if (url.host !== '' || !url.pathname.startsWith('/')) {
        throw new CliExit(
          1,
          `Unable to initialize client: unable to connect to host ${JSON.stringify(url.host)} with scheme ${JSON.stringify(url.protocol.slice(0, -1))}`,
        );
      }
      this.base = opts.connect
        ? { createConnection: opts.connect }
        : { socketPath: decodeURIComponent(url.pathname) };
      this.https = false;
    } else if (url.protocol === 'http:' || url.protocol === 'https:') {
      if (opts.connect) {
        throw new CliExit(1, 'Unable to initialize client: --tunnel works with a unix:// endpoint only');
      }
      this.https = url.protocol === 'https:';
      this.base = {
        host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: url.port || (this.https ? 443 : 80),
      };
      if (this.https) {
        const ca = read('ca-file', opts.caFile);
        const cert = read('cert-file', opts.certFile);
        const key = read('key-file', opts.keyFile);
        Object.assign(this.base, {
          ...(ca ? { ca } : {}),
          ...(cert ? { cert } : {}),
          ...(key ? { key } : {}),
        });
      }
    } else {
      throw new CliExit(
        1,
        `Unable to initialize client: unsupported scheme ${JSON.stringify(url.protocol.slice(0, -1))} (use unix://, http:// or https://)`,
      );
    }
  }

  /**
   * Send a request; resolves with the response once its headers are in, rejects on a connection
   * failure or when no headers came within the request timeout (or `timeoutMs`). The body is the
   * caller's to read.
   */
  async open(
    method: string,
    path: string,
    body?: unknown,
    timeoutMs = this.opts.timeoutMs,
  ): Promise<IncomingMessage> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = {};
    if (payload) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = String(payload.length);
    }
    // node:https (and TLS) is loaded only for https endpoints: it costs start-up time.
    const request = this.https ? (await import('node:https')).request : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request({ ...this.base, method, path, headers }, (res) => {
        clearTimeout(timer);
        resolve(res);
      });
      const timer = setTimeout(() => {
        req.destroy(new UnreachableError(`${this.endpoint}: no answer within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(
          err instanceof UnreachableError ? err : new UnreachableError(`${this.endpoint}: ${describe(err)}`),
        );
      });
      if (payload) req.write(payload);
      req.end();
    });
  }

  /** The request timeout, in ms. */
  get timeoutMs(): number {
    return this.opts.timeoutMs;
  }

  /** A JSON request: the parsed body, or ApiError for a 4xx/5xx answer. */
  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    timeoutMs = this.opts.timeoutMs,
  ): Promise<{ status: number; body: T | undefined }> {
    const res = await this.open(method, path, body, timeoutMs);
    const text = await readAll(res, timeoutMs, this.endpoint);
    const status = res.statusCode ?? 0;
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (status >= 400) throw apiError(status, parsed, text);
    return { status, body: parsed as T | undefined };
  }
}

/** OpenSSL's alert texts say little to an operator; name the flag that fixes them. */
function describe(err: Error): string {
  if (/alert certificate required|alert bad certificate|alert unknown ca/.test(err.message)) {
    return `the API refused our client certificate (--cert-file, --key-file): ${err.message.replace(/^.*routines:[^:]*:/, '').replace(/:\.\.\/.*$/, '')}`;
  }
  return err.message;
}

export function apiError(status: number, parsed: unknown, text: string): ApiError {
  const msg = (parsed as { error?: { message?: string } } | undefined)?.error?.message;
  return new ApiError(status, msg || text.trim() || `HTTP ${status}`);
}

export function readAll(res: IncomingMessage, timeoutMs: number, endpoint: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      res.destroy(
        new UnreachableError(`${endpoint}: the answer did not complete within ${timeoutMs / 1000} s`),
      );
    }, timeoutMs);
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    res.on('error', (err) => {
      clearTimeout(timer);
      reject(err instanceof UnreachableError ? err : new UnreachableError(`${endpoint}: ${err.message}`));
    });
  });
}

export async function clientFromGlobals(
  g: Record<string, string | boolean | undefined>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ApiClient> {
  const driver = String(g.driver ?? 'API');
  if (driver === 'etcd') {
    throw new CliExit(
      1,
      'Unable to initialize client: the etcd driver is not supported; flotilla serves the fleet API on every machine (--endpoint)',
    );
  }
  if (driver !== 'API')
    throw new CliExit(1, `Unable to initialize client: unrecognized driver ${JSON.stringify(driver)}`);
  const opts: ClientOptions = {
    endpoint: String(g.endpoint ?? DEFAULT_API_ENDPOINT),
    timeoutMs: secondsFlag('request-timeout', g['request-timeout'], 3) * 1000,
  };
  if (typeof g['ca-file'] === 'string' && g['ca-file'] !== '') opts.caFile = g['ca-file'];
  if (typeof g['cert-file'] === 'string' && g['cert-file'] !== '') opts.certFile = g['cert-file'];
  if (typeof g['key-file'] === 'string' && g['key-file'] !== '') opts.keyFile = g['key-file'];
  if (typeof g.tunnel === 'string' && g.tunnel !== '') {
    const { tunnelConnector } = await import('./tunnel.js');
    opts.connect = tunnelConnector(g, opts.endpoint, env);
  }
  return new ApiClient(opts);
}
