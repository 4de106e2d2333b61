/**
 * The last command the device refused, kept durably so a technician sees
 * it even after a restart: a device that refuses every command (a command
 * key id the manager does not use, a schedule it does not know) looks
 * healthy otherwise. One small record in the HAL record store
 * (`last-refused`; the file backend writes it temp + fsync + rename, the
 * EEPROM one in its all-or-nothing A/B slots), written before the refusal
 * leaves the device, and only when a refusal differs from the stored one
 * (a redelivered command refused again writes nothing). It names the
 * command (rotation, seq, step), the error and the signing key id, and the
 * configuration it was refused under; never the payload or the signature.
 */
import type { RecordStore } from '../hal/record-store.ts';
import type { Logger } from '../protocol/log.ts';
import type { Ack } from '../protocol/messages/ack.ts';
import type { RefusalSummary } from './health-file.ts';

/** The record's name in the HAL record store. */
export const REFUSAL_RECORD = 'last-refused';
/** The stored message is cut to this length (the record must stay small on an EEPROM). */
const MESSAGE_MAX = 400;

/** The durable record of the last refused command. */
export interface RefusedCommand extends RefusalSummary {
  v: 1;
  message: string;
  /** The key id the command was signed with, as it named it (null: unsigned or unreadable). */
  keyId: string | null;
  /** configDigest().sha256 of the configuration the agent refused it under. */
  configSha256: string | null;
}

/** The signing key id a raw command names, if it can be read. */
function keyIdOf(raw: Buffer | string | object): string | null {
  try {
    const cmd = (typeof raw === 'object' && !Buffer.isBuffer(raw) ? raw : JSON.parse(raw.toString())) as { sig?: { keyId?: unknown } };
    const id = cmd?.sig?.keyId;
    return typeof id === 'string' ? id.slice(0, 128) : null;
  } catch {
    return null;
  }
}

/** Keeps the last refused command (see the module comment) and counts refusals since start. */
export class RefusalLog {
  private count = 0;
  private writing: Promise<void> = Promise.resolve();

  private constructor(private readonly records: RecordStore, private readonly logger: Logger, private readonly configSha256: string | null, private last: RefusedCommand | null) {}

  /** Open the log over `records` (reads the stored record). */
  static async open(records: RecordStore, logger: Logger, configSha256: string | null): Promise<RefusalLog> {
    return new RefusalLog(records, logger, configSha256, await RefusalLog.read(records).catch(() => null));
  }

  /** The stored record, or null (never refused, or unreadable). */
  static async read(records: RecordStore): Promise<RefusedCommand | null> {
    const raw = await records.read(REFUSAL_RECORD);
    if (!raw) return null;
    const r = JSON.parse(raw.toString('utf8')) as RefusedCommand;
    return r && r.v === 1 && typeof r.code === 'string' && typeof r.at === 'string' ? r : null;
  }

  /** Record a refusal (ack.ok false) before it is sent; a failed write is logged, never thrown. */
  record(ack: Ack, raw: Buffer | string | object): Promise<void> {
    this.count++;
    const code = ack.error?.code ?? 'E_INTERNAL';
    const entry: RefusedCommand = {
      v: 1, at: ack.at, rotationId: ack.rotationId, seq: ack.seq, step: ack.step, code,
      message: (ack.error?.message ?? '').slice(0, MESSAGE_MAX), keyId: keyIdOf(raw), configSha256: this.configSha256,
    };
    const same = (r: RefusedCommand | null) => r !== null && r.rotationId === entry.rotationId && r.seq === entry.seq && r.step === entry.step && r.code === entry.code && r.configSha256 === entry.configSha256;
    if (same(this.last)) return this.writing;
    this.last = entry;
    this.writing = this.writing.then(async () => {
      const bytes = Buffer.from(JSON.stringify(entry));
      const room = this.records.room?.(REFUSAL_RECORD);
      if (room !== undefined && bytes.length > room) {
        this.logger.warn('refused command not recorded: no room in the record store', { code, bytes: bytes.length, room });
        return;
      }
      try {
        await this.records.write(REFUSAL_RECORD, bytes);
      } catch (err) {
        this.logger.warn('refused command not recorded', { code, reason: (err as Error).message });
      }
    });
    return this.writing;
  }

  /** For the health file: refusals since start and the last one (stored or from before the start). */
  summary(): { count: number; last: RefusalSummary | null } {
    const l = this.last;
    return { count: this.count, last: l ? { at: l.at, rotationId: l.rotationId, seq: l.seq, step: l.step, code: l.code } : null };
  }
}
