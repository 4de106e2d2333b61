/**
 * Structured logging: one JSON object per line, always with the device id,
 * rotation id and step when known. Fields that could carry secrets are
 * redacted here, whatever the caller passes.
 */

/** Log levels in increasing severity. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Context every line of a component carries. */
export interface LogFields {
  deviceId?: string;
  rotationId?: string;
  step?: string;
  [key: string]: unknown;
}

/** A structured logger. `child` adds context for a component or a rotation. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_FIELD = /(private|secret|passw|pin$|^pin|token|pkcs8|seed)/i;

function redact(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [k, v] of Object.entries(fields)) {
    if (SECRET_FIELD.test(k)) out[k] = '[redacted]';
    else if (typeof v === 'string' && v.includes('PRIVATE KEY-----')) out[k] = '[redacted]';
    else if (v instanceof Error) out[k] = { message: v.message, code: (v as { code?: string }).code };
    else out[k] = v;
  }
  return out;
}

/** Syslog priorities of the levels, as the journal reads them from a `<N>` line prefix (sd-daemon(3)): err, warning, info, debug. */
export const SYSLOG_PRIORITY: Record<LogLevel, number> = { debug: 7, info: 6, warn: 4, error: 3 };

/**
 * Create a logger writing JSON lines to `sink` (stderr by default). `level`
 * may be a function, read at each line (a level changed while running);
 * `priorities` prefixes each line with its syslog priority (`<4>{...}`), for
 * output that goes to the journal.
 */
export function createLogger(opts: { level?: LogLevel | (() => LogLevel); priorities?: boolean; sink?: (line: string) => void; fields?: LogFields; now?: () => Date } = {}): Logger {
  const levelOf = opts.level;
  const fixed = ORDER[(typeof levelOf === 'function' ? undefined : levelOf) ?? (process.env.TRUSTROLL_LOG as LogLevel | undefined) ?? 'info'] ?? ORDER.info;
  const min = typeof levelOf === 'function' ? () => ORDER[levelOf()] ?? ORDER.info : () => fixed;
  const sink = opts.sink ?? ((line: string) => process.stderr.write(line + '\n'));
  const now = opts.now ?? (() => new Date());
  const base = opts.fields ?? {};
  const write = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (ORDER[level] < min()) return;
    const line = JSON.stringify({ t: now().toISOString(), level, msg, ...redact({ ...base, ...fields }) });
    sink(opts.priorities ? `<${SYSLOG_PRIORITY[level]}>${line}` : line);
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (fields) => createLogger({ ...opts, fields: { ...base, ...fields } }),
  };
}

/** A logger that drops everything (benchmarks). */
export const silentLogger: Logger = createLogger({ level: 'error', sink: () => {} });
