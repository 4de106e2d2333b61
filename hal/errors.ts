/**
 * Every failure the HAL reports, as one list of stable codes. A code is never
 * reused or renamed once shipped; `docs/hal.md` documents each one and a test
 * checks that it does. Messages name the config setting to fix when a
 * setting is the cause, and never contain PINs, keys or record contents.
 */
import { userInfo } from 'node:os';

/** Stable HAL error codes, with the situation each one stands for. */
export const HAL_ERROR_CODES = {
  /** The config object does not match the schema (a setting is missing or malformed). */
  E_HAL_CONFIG: 'invalid HAL configuration',
  /** `keys.backend` or `records.backend` names a backend this build does not have. */
  E_HAL_BACKEND_UNKNOWN: 'unknown HAL backend',
  /** No PKCS#11 token with the configured label is present in the module. */
  E_HAL_TOKEN_MISSING: 'PKCS#11 token not found',
  /** The token refused the configured PIN, or the PIN is locked. */
  E_HAL_PIN: 'PIN rejected',
  /** The TPM named by `keys.tcti` cannot be reached. */
  E_HAL_TPM_ABSENT: 'TPM not reachable',
  /** `create` was asked for a label that already holds a key. */
  E_HAL_KEY_EXISTS: 'key label already in use',
  /** No key with this label exists in the backend. */
  E_HAL_KEY_NOT_FOUND: 'key not found',
  /** The backend cannot make keys of the requested algorithm. */
  E_HAL_ALGORITHM: 'key algorithm not supported by backend',
  /** A key label or record name has characters or a length the HAL refuses. */
  E_HAL_NAME: 'invalid key label or record name',
  /** `sign` was given something other than a non-empty buffer of at most 64 KiB. */
  E_HAL_SIGN_INPUT: 'data to sign must be a non-empty buffer of at most 64 KiB',
  /** A stored record failed its integrity check and no intact copy exists. */
  E_HAL_RECORD_CORRUPT: 'stored record is corrupt',
  /** The newest EEPROM image is damaged and an older one was adopted: acknowledged writes were lost (reported, never hidden). */
  E_HAL_ROLLBACK: 'storage rolled back to an older image',
  /** The records do not fit the EEPROM slot size. */
  E_HAL_STORAGE_FULL: 'storage full',
  /** A sealed key could not be unsealed (wrong KEK, or the blob was altered). */
  E_HAL_UNSEAL: 'sealed key could not be unsealed',
  /** The underlying device, file system or token failed an operation. */
  E_HAL_IO: 'backend I/O failed',
  /** The process's user may not write a folder or file the backend keeps its data in (ownership, mode, read-only mount, immutable flag). */
  E_HAL_PERMISSION: 'no write permission',
  /** A TLS terminator for a hardware key could not be started or died. */
  E_HAL_TLS: 'TLS with hardware key failed',
  /** The store was used after `close()`. */
  E_HAL_CLOSED: 'store is closed',
} as const;

/** One of the stable HAL error codes. */
export type HalErrorCode = keyof typeof HAL_ERROR_CODES;

/**
 * The only error type the HAL throws. `code` is stable and safe to branch on;
 * `setting` (when present) is the dotted config path to fix, e.g.
 * `keys.tokenLabel`; `cause` keeps the backend's own error for diagnosis.
 */
export class HalError extends Error {
  readonly code: HalErrorCode;
  readonly setting: string | undefined;

  constructor(code: HalErrorCode, detail: string, options: { setting?: string; cause?: unknown } = {}) {
    const where = options.setting === undefined ? '' : ` (check setting "${options.setting}")`;
    super(`${code}: ${HAL_ERROR_CODES[code]}: ${detail}${where}`, { cause: options.cause });
    this.name = 'HalError';
    this.code = code;
    this.setting = options.setting;
  }
}

/** True when `err` is a HalError, optionally with the given code. */
export function isHalError(err: unknown, code?: HalErrorCode): err is HalError {
  return err instanceof HalError && (code === undefined || err.code === code);
}

/**
 * A folder the backend must write is not writable by this process's user:
 * E_HAL_PERMISSION naming the path, the user and the errno (EACCES,
 * EPERM, EROFS). A permission problem, not a setting to change: no
 * setting is named.
 */
export function permissionError(what: string, path: string, err: unknown): HalError {
  const uid = process.getuid?.();
  let user = `uid ${uid ?? '?'}`;
  try {
    user = `${userInfo().username} (uid ${uid})`;
  } catch {
    // No passwd entry: the uid names the user.
  }
  const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  const why = code === 'EROFS' ? 'its file system is mounted read-only' : code === 'EPERM' ? 'it is immutable (chattr +i) or a security module forbids it' : 'ownership or mode';
  return new HalError('E_HAL_PERMISSION', `${what} ${path} is not writable by the agent's user ${user}: ${code}, ${why}; give that user write access to ${path}`, { cause: err });
}

/** Wraps an unknown backend failure as E_HAL_IO unless it is already a HalError. */
export function asHalError(err: unknown, what: string): HalError {
  if (err instanceof HalError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new HalError('E_HAL_IO', `${what}: ${msg}`, { cause: err });
}
