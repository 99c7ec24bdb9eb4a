/**
 * The DockerPort contract, run against the fake (test/unit/docker/fake.test.ts) and against the real
 * engine through DockerodeEngine (test/integration/docker-contract.test.ts), so the fake cannot drift
 * from the adapter in what both model: images, an empty container world, errors and Docker going
 * away. Pulls only ever go to a registry address on loopback that does not answer.
 */
import { expect, it } from 'vitest';
import { isCode } from '../../src/lib/errors.js';
import type { DockerPort } from '../../src/docker/port.js';

export interface DockerContractEnv {
  docker: DockerPort;
  /** A port whose engine cannot be reached (a missing socket, or the fake switched off). */
  unreachable: DockerPort;
  /** An image present in the engine (`name:tag`). */
  presentImage: string;
  /** A reference whose registry refuses (no such registry on loopback). */
  unpullable: string;
  /** A label no container carries. */
  unusedLabel: string;
}

export function dockerContract(env: () => DockerContractEnv): void {
  it('ping answers', async () => {
    await expect(env().docker.ping()).resolves.toBeUndefined();
  });

  it('an engine that cannot be reached is E_DOCKER_UNAVAILABLE', async () => {
    const err = await env()
      .unreachable.ping()
      .catch((e: unknown) => e);
    expect(isCode(err, 'E_DOCKER_UNAVAILABLE'), String(err)).toBe(true);
    const err2 = await env()
      .unreachable.inspectImage(env().presentImage)
      .catch((e: unknown) => e);
    expect(isCode(err2, 'E_DOCKER_UNAVAILABLE'), String(err2)).toBe(true);
  });

  it('inspects a present image; a missing one is undefined', async () => {
    const { docker, presentImage } = env();
    const info = await docker.inspectImage(presentImage);
    expect(info?.repoTags).toContain(presentImage);
    expect(info?.id).toMatch(/^sha256:/);
    expect(await docker.inspectImage(`flotilla-contract/absent:${Date.now()}`)).toBeUndefined();
  });

  it('lists the present image among the images', async () => {
    const { docker, presentImage } = env();
    const all = await docker.listImages();
    expect(all.some((i) => i.repoTags.includes(presentImage))).toBe(true);
  });

  it('a pull the registry refuses is E_IMAGE_PULL naming the image, and adds no image', async () => {
    const { docker, unpullable } = env();
    const err = await docker.pullImage(unpullable).catch((e: unknown) => e);
    expect(isCode(err, 'E_IMAGE_PULL'), String(err)).toBe(true);
    expect((err as Error).message).toContain(unpullable);
    expect(await docker.inspectImage(unpullable)).toBeUndefined();
  });

  it('a label no container carries lists nothing; a missing container inspects as undefined', async () => {
    const { docker, unusedLabel } = env();
    expect(await docker.listContainers({ labels: [unusedLabel], all: true })).toEqual([]);
    expect(await docker.inspectContainer(`flotilla-contract-absent-${Date.now()}`)).toBeUndefined();
  });

  it('an events stream reports connected', async () => {
    const { docker } = env();
    let stream: { close(): void } | undefined;
    const connected = await new Promise<boolean>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('events: no onConnected in 10 s')), 10_000);
      stream = docker.events({
        onEvent: () => undefined,
        onConnected: () => {
          clearTimeout(t);
          resolve(true);
        },
        onDisconnected: () => undefined,
      });
    });
    stream?.close();
    expect(connected).toBe(true);
  });
}
