/**
 * The process a generated container service runs: `node dist/container/runner-main.js run|cleanup SPEC`
 * (the same as `flotilla container run|cleanup SPEC`, without loading the rest of the CLI, so a
 * container unit starts as fast as it can). See runner.ts for what it does.
 */
import module from 'node:module';
import { pathToFileURL } from 'node:url';
import { SdNotify } from '../lib/sdnotify.js';
import { cleanupContainer, readRunSpec, runContainer } from './runner.js';
import { slimDockerode } from '../docker/slim.js';

/** Run `verb` (run | cleanup) for the spec at `specPath`; resolves with the process exit code. */
export async function runnerMain(verb: string, specPath: string | undefined): Promise<number> {
  if ((verb !== 'run' && verb !== 'cleanup') || !specPath) {
    process.stderr.write('usage: container run SPEC | container cleanup SPEC\n');
    return 64;
  }
  let spec;
  try {
    spec = readRunSpec(specPath);
  } catch (err) {
    process.stderr.write(`flotilla: ${(err as Error).message}\n`);
    return verb === 'cleanup' ? 0 : 1;
  }
  // dockerode without the parts the runner never uses (see slim.ts): a faster container start;
  // on Node >= 22.1 also V8's compile cache for what is loaded next (a no-op on Node 20).
  slimDockerode();
  (module as { enableCompileCache?: () => unknown }).enableCompileCache?.();
  const { DockerodeEngine } = await import('../docker/dockerode.js');
  const docker = new DockerodeEngine({ socketPath: spec.dockerSocket });
  try {
    if (verb === 'cleanup') {
      await cleanupContainer(spec, docker, (l) => process.stderr.write(`flotilla: ${l}\n`));
      return 0;
    }
    const notify = new SdNotify();
    let requestStop!: () => void;
    const stopRequested = new Promise<void>((r) => (requestStop = r));
    process.on('SIGTERM', () => requestStop());
    process.on('SIGINT', () => requestStop());
    return await runContainer(spec, docker, {
      stdout: process.stdout,
      stderr: process.stderr,
      notify: (...a) => notify.send(...a),
      stopRequested,
    });
  } finally {
    docker.close();
  }
}

// Entry point when run directly (not when imported by the CLI).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  void runnerMain(process.argv[2] ?? '', process.argv[3]).then((code) => {
    // Wait for stdout/stderr to drain into the journal, then exit (open sockets must not keep us).
    process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
  });
}
