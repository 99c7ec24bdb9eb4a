/**
 * Fast start for the container runner: dockerode loads, at require time, modules the runner never
 * uses (ssh2 for `ssh://` Docker hosts, @grpc/grpc-js and @grpc/proto-loader for BuildKit sessions,
 * tar-fs for build contexts): ~220 ms of CPU on every container start. `slimDockerode()` makes
 * those requires return stand-ins that throw a clear error if anything ever calls them; the runner
 * talks to a unix socket and never builds, so nothing does. Call it before dockerode is imported;
 * only the runner process does (the agent loads dockerode whole).
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

export function slimDockerode(): void {
  if (installed) return;
  installed = true;
  const Module = createRequire(import.meta.url)('node:module') as {
    _load: (request: string, ...rest: unknown[]) => unknown;
  };
  const load = Module._load;
  Module._load = function (this: unknown, request: string, ...rest: unknown[]): unknown {
    if (UNUSED.has(request)) return unavailable(request);
    return load.call(this, request, ...rest);
  };
}
