/**
 * The running agent as a process (`trustroll-agent run`): its exit codes,
 * which tell a supervisor (the systemd unit, the init script) whether a
 * restart can help, its log level, and whether its log goes to the journal.
 *
 * Exit codes of `run` (sysexits.h names; image/README.md has the table):
 *   0   stopped by SIGTERM or SIGINT
 *   1   an unexpected error (restarted)
 *   2   bad command line (not restarted)
 *   75  EX_TEMPFAIL: a transient cause: storage I/O, a token or TPM not reachable, the TLS port taken (restarted)
 *   77  EX_NOPERM: the agent's user may not read or write what it needs (not restarted)
 *   78  EX_CONFIG: the configuration or the provisioning is wrong, or the record was lost (not restarted)
 */
import { fstatSync, readFileSync } from 'node:fs';
import type { LogLevel } from '../protocol/log.ts';

/** `run`'s exit codes by cause. */
export const RUN_EXIT = { stopped: 0, unexpected: 1, usage: 2, tempfail: 75, noperm: 77, config: 78 } as const;

/** Error codes a restart cannot fix: a person must change the configuration or provision the device. */
const CONFIG_CODES = new Set([
  'E_AGENT_CONFIG', 'E_AGENT_NOT_PROVISIONED', 'E_AGENT_PROVISION', 'E_HAL_CONFIG', 'E_HAL_BACKEND_UNKNOWN', 'E_HAL_PIN',
  'E_HAL_ALGORITHM', 'E_HAL_NAME', 'E_HAL_KEY_NOT_FOUND', 'E_HAL_UNSEAL', 'E_HAL_ROLLBACK', 'E_HAL_RECORD_CORRUPT',
  'E_STORE_CORRUPT', 'E_STORE_REGRESSED', 'E_SCHEMA', 'E_PEM',
]);
/** Error codes of a permission problem. */
const PERMISSION_CODES = new Set(['E_AGENT_PERMISSION', 'E_HAL_PERMISSION', 'EACCES', 'EPERM', 'EROFS']);
/** Error codes that may be gone a little later. */
const TRANSIENT_CODES = new Set([
  'E_HAL_TOKEN_MISSING', 'E_HAL_TPM_ABSENT', 'E_HAL_IO', 'E_HAL_TLS', 'E_HAL_STORAGE_FULL', 'E_STORE_IO', 'E_STORE_FULL',
  'E_AGENT_LINK', 'E_AGENT_RELAY', 'EADDRINUSE', 'EADDRNOTAVAIL', 'EAGAIN', 'EBUSY', 'EIO', 'ENOSPC', 'EMFILE', 'ENFILE',
]);

/** The code an error names: its own `code`, else the `E_...` its message starts with. */
function codeOf(err: unknown): string | null {
  const own = (err as { code?: unknown })?.code;
  if (typeof own === 'string') return own;
  return /^(E_[A-Z0-9_]+)\b/.exec((err as Error)?.message ?? '')?.[1] ?? null;
}

/** The exit code `run` ends with after `err` stopped it. */
export function runExitCode(err: unknown): number {
  const code = codeOf(err);
  if (code && CONFIG_CODES.has(code)) return RUN_EXIT.config;
  if (code && PERMISSION_CODES.has(code)) return RUN_EXIT.noperm;
  if (code && TRANSIENT_CODES.has(code)) return RUN_EXIT.tempfail;
  return RUN_EXIT.unexpected;
}

/** The log levels a setting may name. */
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

const asLevel = (v: unknown): LogLevel | null => (LOG_LEVELS.includes(v as LogLevel) ? (v as LogLevel) : null);

/** The level in force: `--log-level`, else `logLevel` in agent.json, else $TRUSTROLL_LOG, else info. */
export function logLevelOf(cli: string | undefined, config: unknown, env: NodeJS.ProcessEnv = process.env): LogLevel {
  return asLevel(cli) ?? asLevel(config) ?? asLevel(env.TRUSTROLL_LOG) ?? 'info';
}

/** `logLevel` of the configuration file as it is on disk now (SIGHUP), or undefined when the file or the setting is unreadable. */
export function logLevelOnDisk(configPath: string): unknown {
  try {
    return (JSON.parse(readFileSync(configPath, 'utf8')) as { logLevel?: unknown }).logLevel;
  } catch {
    return undefined;
  }
}

/**
 * True when file descriptor `fd` is connected to the journal: $JOURNAL_STREAM
 * ("<device>:<inode>") names that very stream (sd-daemon(3), systemd.exec(5)).
 * A process whose output was redirected elsewhere by a child keeps the
 * variable but not the stream, hence the comparison.
 */
export function onJournal(fd = 2, env: NodeJS.ProcessEnv = process.env): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1]!) && st.ino === BigInt(m[2]!);
  } catch {
    return false;
  }
}
