/**
 * The DockerPort contract (test/support/docker-contract.ts) against the real Docker engine of the
 * test environment through DockerodeEngine; the fake runs the same cases in test/unit/docker.
 * Pulls go only to 127.0.0.1:1, where no registry answers.
 */
import { afterAll } from 'vitest';
import { DockerodeEngine } from '../../src/docker/dockerode.js';
import { dockerContract } from '../support/docker-contract.js';
import { describeDocker, dockerSocket } from '../support/testbed.js';

describeDocker('DockerodeEngine: the DockerPort contract against real dockerd', () => {
  const docker = new DockerodeEngine({ socketPath: dockerSocket ?? '/var/run/docker.sock' });
  const unreachable = new DockerodeEngine({ socketPath: '/nonexistent/flotilla-contract/docker.sock' });
  afterAll(() => {
    docker.close();
    unreachable.close();
  });
  dockerContract(() => ({
    docker,
    unreachable,
    presentImage: 'busybox:latest',
    unpullable: `127.0.0.1:1/flotilla-contract/nope:${process.pid}`,
    unusedLabel: `flotilla.contract=none-${process.pid}`,
  }));
});
