/**
 * The `errorcode` of an Omaha error event (eventresult 0), as update_engine numbers its action exit
 * codes (Chromium OS update_engine error_code.h, which CoreOS's fork kept), from the FlotillaError a
 * failed update ended with. An update server (Nebraska, CoreUpdate) groups failures by this number,
 * so "signature does not verify" and "download cut short" must not both be 1.
 *
 * Each of our update errors has one code (src/lib/errors.ts); E_UPDATE_VERIFY and E_UPDATE_OMAHA
 * cover several of update_engine's, told apart by what the error says (its details first, then its
 * message, both set by the throw sites in src/update/).
 */
import { FlotillaError } from '../lib/errors.js';

/** The update_engine codes flotilla sends (names as in error_code.h, without the kErrorCode prefix). */
export const OMAHA_ERROR = {
  Error: 1,
  OmahaResponseHandlerError: 3,
  InstallDeviceOpenError: 7,
  DownloadTransferError: 9,
  PayloadHashMismatchError: 10,
  PayloadSizeMismatchError: 11,
  DownloadPayloadVerificationError: 12,
  DownloadWriteError: 14,
  NewRootfsVerificationError: 15,
  DownloadManifestParseError: 23,
  OmahaResponseInvalid: 34,
  /** kOmahaRequestHTTPResponseBase: 2000 + the HTTP status of the update check. */
  OmahaRequestHTTPResponseBase: 2000,
} as const;

/** The errorcode for the error an update failed with (1, kError, for anything else). */
export function omahaErrorCode(err: unknown): number {
  if (!(err instanceof FlotillaError)) return OMAHA_ERROR.Error;
  const msg = err.message;
  const details = (err.details ?? {}) as Record<string, unknown>;
  const code = err.code;
  if (code === 'E_UPDATE_OMAHA') {
    const http = typeof details.httpStatus === 'number' ? details.httpStatus : undefined;
    if (http !== undefined) return OMAHA_ERROR.OmahaRequestHTTPResponseBase + http;
    return OMAHA_ERROR.OmahaResponseInvalid;
  }
  if (code === 'E_UPDATE_DOWNLOAD') return OMAHA_ERROR.DownloadTransferError;
  if (code === 'E_UPDATE_SPACE')
    // An image larger than the passive slot is not for this machine; a full disk is a write error.
    return details.slotSize !== undefined
      ? OMAHA_ERROR.OmahaResponseHandlerError
      : OMAHA_ERROR.DownloadWriteError;
  // No A/B slots, or a GPT that does not read: the install device cannot be used.
  if (code === 'E_UPDATE_SLOTS' || code === 'E_GPT') return OMAHA_ERROR.InstallDeviceOpenError;
  if (code === 'E_UPDATE_MANIFEST')
    // Not for this machine (board, arch) is the response handler's refusal; anything else is a
    // manifest that does not parse or is not signed.
    return details.field === 'board' || details.field === 'arch'
      ? OMAHA_ERROR.OmahaResponseHandlerError
      : OMAHA_ERROR.DownloadManifestParseError;
  if (code === 'E_UPDATE_VERIFY') {
    if (/does not read back as written|short read back from slot/.test(msg))
      return OMAHA_ERROR.NewRootfsVerificationError;
    if (/disagree on the payload sha256|SHA-256 mismatch/.test(msg))
      return OMAHA_ERROR.PayloadHashMismatchError;
    if (
      /disagree on the payload size|is truncated: \d+ of \d+ bytes|larger than the \d+ bytes the manifest states|decompress(es|ed) to (more than the )?\d+ bytes/.test(
        msg,
      )
    )
      return OMAHA_ERROR.PayloadSizeMismatchError;
    // A signature that does not verify, an untrusted key, an answer that does not match the
    // signed manifest (version, name, the manifest's own size and hash), a payload gone.
    return OMAHA_ERROR.DownloadPayloadVerificationError;
  }
  return OMAHA_ERROR.Error;
}
