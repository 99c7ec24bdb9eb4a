/**
 * What ContainerUnits remembers about each launched container unit between passes (its "track"):
 * the pull in flight, the last failure and the restarts after Docker came back, with the bounds
 * that keep it from ever becoming a hot loop.
 */
import type { PullStateInfo } from '../registry/types.js';

export interface Failure {
  reason: string;
  kind: 'docker' | 'pull';
  /** The Docker epoch it happened in (docker failures are retried in a later epoch). */
  epoch: number;
  /** ms by the clock (wall time). */
  at: number;
}

export interface Track {
  hash: string;
  launched: boolean;
  pulling?: { image: string; progress: PullStateInfo; token: number } | undefined;
  pulledImage?: string;
  failure?: Failure | undefined;
  /** Restarts of a failed unit because Docker came back: in which epoch, how many, when. */
  retried?: { epoch: number; count: number; at: number };
}

/** A docker failure while the events stream stayed connected is retried after this long. */
export const DOCKER_RETRY_MS = 30_000;
/**
 * A unit that failed because Docker went away is started again when Docker is back: at most this
 * many times per return of Docker, this far apart (systemd refuses a start while the unit's start
 * rate limit, 5 starts in 10 s by default, is still hit by its own Restart= attempts).
 */
export const BACK_RETRIES = 3;
export const BACK_RETRY_SPACING_MS = 12_000;
