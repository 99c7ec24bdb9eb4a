/** etcd3 / gRPC errors mapped onto flotilla's error catalogue (E_REGISTRY_*, E_LEASE_NOT_FOUND …). */
import { EtcdLeaseInvalidError, GRPCInvalidArgumentError } from 'etcd3';
import { FlotillaError } from '../lib/errors.js';

/** Map etcd3 / gRPC errors onto the catalogue. */
export function mapError(err: unknown, what: string, lease?: string): Error {
  if (err instanceof FlotillaError) return err;
  if (
    err instanceof EtcdLeaseInvalidError ||
    /requested lease not found/i.test((err as Error)?.message ?? '')
  ) {
    return new FlotillaError(
      'E_LEASE_NOT_FOUND',
      `${what}: lease ${lease ?? ''} not found`.replace('  ', ' '),
      {
        lease,
      },
    );
  }
  const msg = (err as Error)?.message ?? String(err);
  if (/compacted/i.test(msg)) return new FlotillaError('E_REGISTRY_COMPACTED', `${what}: ${msg}`);
  if (
    err instanceof GRPCInvalidArgumentError ||
    /duplicate key given in txn|too many operations in txn/i.test(msg)
  ) {
    return new FlotillaError('E_INVALID_REQUEST', `etcd ${what} refused: ${msg}`, {}, { cause: err });
  }
  return new FlotillaError('E_REGISTRY_UNAVAILABLE', `etcd ${what} failed: ${msg}`, {}, { cause: err });
}
