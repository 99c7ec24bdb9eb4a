/** FakeDocker (src/docker/fake.ts) against the DockerPort contract, and what it refuses to fake. */
import { describe, expect, it } from 'vitest';
import { FakeDocker } from '../../../src/docker/fake.js';
import { dockerContract } from '../../support/docker-contract.js';

describe('FakeDocker: the DockerPort contract', () => {
  const docker = new FakeDocker();
  docker.images.add('busybox:latest');
  const unpullable = '127.0.0.1:1/flotilla-contract/nope:1';
  docker.pullFailures.set(unpullable, 'connection refused');
  const unreachable = new FakeDocker();
  unreachable.available = false;
  dockerContract(() => ({
    docker,
    unreachable,
    presentImage: 'busybox:latest',
    unpullable,
    unusedLabel: 'flotilla.contract=none',
  }));
});

it('what the fake does not model throws instead of silently succeeding', async () => {
  const d = new FakeDocker();
  await expect(d.startContainer()).rejects.toThrow(
    'Fake method not implemented: FakeDocker.startContainer()',
  );
  await expect(d.removeContainer()).rejects.toThrow(/not implemented/);
  await expect(d.waitContainer()).rejects.toThrow(/not implemented/);
});
