/**
 * The CLI's client for the agent API: fleet's `--endpoint` (unix://, http://, https:// with optional
 * client certificates), `--request-timeout`. Requests are JSON; errors come back as FlotillaErrors
 * with the server's message, or E_REGISTRY_UNAVAILABLE-style connection errors (exit 2).
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { FlotillaError } from '../lib/errors.js';

export interface ClientOptions {
  endpoint: string;
  timeoutMs: number;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class ApiClient {
  private readonly base: RequestOptions;
  private readonly https: boolean;

  constructor(private readonly opts: ClientOptions) {
    const first = opts.endpoint.split(',')[0]!.trim();
    let url: URL;
    try {
      url = new URL(first);
    } catch {
      throw new FlotillaError(
        'E_USAGE',
        `--endpoint: ${JSON.stringify(first)} is not a URL (unix:///var/run/fleet.sock, http://host:port)`,
      );
    }
    if (url.protocol === 'unix:' || url.protocol === 'file:') {
      if (url.host !== '' || !url.pathname.startsWith('/')) {
        throw new FlotillaError(
          'E_USAGE',
          `--endpoint: unable to connect to host ${JSON.stringify(url.host)} with scheme "unix": use unix:///absolute/path`,
        );
      }
      this.base = { socketPath: url.pathname };
      this.https = false;
    } else if (url.protocol === 'http:' || url.protocol === 'https:') {
      this.https = url.protocol === 'https:';
      this.base = { host: url.hostname, port: url.port || (this.https ? 443 : 80) };
      if (this.https) {
        const read = (flag: string, p?: string) => {
          if (!p) return undefined;
          try {
            return readFileSync(p);
          } catch (err) {
            throw new FlotillaError('E_USAGE', `--${flag}: cannot read ${p}: ${(err as Error).message}`);
          }
        };
        Object.assign(this.base, {
          ca: read('ca-file', opts.caFile),
          cert: read('cert-file', opts.certFile),
          key: read('key-file', opts.keyFile),
        });
      }
    } else {
      throw new FlotillaError('E_USAGE', `--endpoint: unsupported scheme ${JSON.stringify(url.protocol)}`);
    }
  }

  request<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T | undefined }> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = {};
    if (payload) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = String(payload.length);
    }
    return new Promise((resolve, reject) => {
      const req = (this.https ? httpsRequest : httpRequest)(
        { ...this.base, method, path, headers },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            clearTimeout(timer);
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              parsed = undefined;
            }
            const status = res.statusCode ?? 0;
            if (status >= 400) {
              const msg = (parsed as { error?: { message?: string } } | undefined)?.error?.message ?? text;
              reject(new ApiError(status, msg || `HTTP ${status}`));
              return;
            }
            resolve({ status, body: parsed as T | undefined });
          });
          res.on('error', reject);
        },
      );
      const timer = setTimeout(() => {
        req.destroy(
          new FlotillaError('E_REGISTRY_UNAVAILABLE', `request timed out after ${this.opts.timeoutMs} ms`),
        );
      }, this.opts.timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(
          err instanceof FlotillaError || err instanceof ApiError
            ? err
            : new FlotillaError('E_REGISTRY_UNAVAILABLE', err.message),
        );
      });
      if (payload) req.write(payload);
      req.end();
    });
  }
}

export function clientFromGlobals(g: Record<string, string | boolean | undefined>): ApiClient {
  const timeout = Number(g['request-timeout'] ?? 3);
  if (!Number.isFinite(timeout) || timeout <= 0) {
    throw new FlotillaError(
      'E_USAGE',
      `--request-timeout: ${JSON.stringify(g['request-timeout'])} is not a positive number of seconds`,
    );
  }
  const opts: ClientOptions = {
    endpoint: String(g.endpoint ?? 'unix:///var/run/fleet.sock'),
    timeoutMs: timeout * 1000,
  };
  if (typeof g['ca-file'] === 'string') opts.caFile = g['ca-file'];
  if (typeof g['cert-file'] === 'string') opts.certFile = g['cert-file'];
  if (typeof g['key-file'] === 'string') opts.keyFile = g['key-file'];
  return new ApiClient(opts);
}
