/**
 * Fast start for the container runner: dockerode loads, at require time, modules the runner never
 * uses (ssh2 for `ssh://` Docker hosts, @grpc/grpc-js and @grpc/proto-loader for BuildKit sessions,
 * tar-fs for build contexts): ~220 ms of CPU on every container start and ~15 MB of the agent's
 * memory. `slimDockerode()` makes those requires return stand-ins that throw a clear error if
 * anything ever calls them; flotilla talks to a unix socket and never builds, so nothing does.
 * Call it before dockerode is loaded: DockerodeEngine does (it loads dockerode lazily).
 */
import { createRequire } from 'node:module';

const UNUSED = new Set(['ssh2', '@grpc/grpc-js', '@grpc/proto-loader', 'tar-fs']);

function unavailable(what: string): unknown {
  const fail = function (): never {
    throw new Error(`${what} is not loaded in the flotilla container runner`);
  };
  return new Proxy(fail, {
    get: (_t, p) => (p === '__esModule' ? false : unavailable(`${what}.${String(p)}`)),
    construct: () => fail(),
  });
}

let installed = false;

/** Whether a require comes from dockerode's own files (dockerode, docker-modem). */
function fromDockerode(parent: unknown): boolean {
  const file = (parent as { filename?: unknown } | undefined)?.filename;
  return typeof file === 'string' && /[\\/]node_modules[\\/](dockerode|docker-modem)[\\/]/.test(file);
}

/**
 * Install the stand-ins (idempotent). They apply only to requires made by dockerode's and
 * docker-modem's own files: etcd3's @grpc/grpc-js, in the same agent process, loads for real.
 */
export function slimDockerode(): void {
  if (installed) return;
  installed = true;
  const Module = createRequire(import.meta.url)('node:module') as {
    _load: (request: string, parent: unknown, ...rest: unknown[]) => unknown;
  };
  const load = Module._load;
  Module._load = function (this: unknown, request: string, parent: unknown, ...rest: unknown[]): unknown {
    if (UNUSED.has(request) && fromDockerode(parent)) return unavailable(request);
    return load.call(this, request, parent, ...rest);
  };
}
