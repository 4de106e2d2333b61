/**
 * Where a device keeps its management-link material while that PKI's root
 * rotates: one sealed JSON record (the same shape and integrity hash as the
 * device's trust-store record: link roots R0/D/R1, the link certificate and
 * its fallback, the link rotation's progress, results for redeliveries),
 * in `link-state.json` next to the file `link.cert` names.
 *
 * The record is the truth. After each durable save the files the
 * configuration names are rewritten to match (`link.ca`: every trusted
 * link root; `link.cert`: the certificate presented first), so the
 * self-test and a restart without the record read the same material; on
 * open a mirror that missed a write (power cut between the two) is redone.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ProtocolError } from '../../protocol/errors.ts';
import type { DeviceRecord } from '../device-record.ts';
import { anchorsOf } from '../device-record.ts';
import type { LinkConfig } from '../config.ts';
import { openRecord, sealRecord } from '../state-store.ts';
import { writeFileDurable } from './durable-file.ts';

/** The label the link key has inside a link record (the key itself stays where `link.key`/`link.keyLabel` says). */
export const LINK_KEY_LABEL = 'link';

/** Path of the link record for a link configuration. */
export function linkStatePath(link: Pick<LinkConfig, 'cert'>): string {
  return join(dirname(link.cert), 'link-state.json');
}

/** Durable storage of the link record and its mirror files. */
export class LinkStore {
  readonly path: string;

  constructor(private readonly link: Pick<LinkConfig, 'ca' | 'cert'>) {
    this.path = linkStatePath(link);
  }

  /** The stored record, or null before the first link rotation. E_STORE_CORRUPT on a failed integrity check. */
  load(): DeviceRecord | null {
    if (!existsSync(this.path)) return null;
    let sealed: { body?: unknown; hash?: unknown };
    try {
      sealed = JSON.parse(readFileSync(this.path, 'utf8')) as typeof sealed;
    } catch (err) {
      throw new ProtocolError('E_STORE_CORRUPT', `${this.path}: link record unreadable (${(err as Error).message})`);
    }
    if (typeof sealed.body !== 'string' || typeof sealed.hash !== 'string') throw new ProtocolError('E_STORE_CORRUPT', `${this.path}: not a sealed link record`);
    const record = openRecord(sealed.body, sealed.hash, this.path);
    this.mirror(record, true);
    return record;
  }

  /** Durably replace the record, then the mirror files; resolves only when all of it survives power loss. */
  save(record: DeviceRecord): void {
    writeFileDurable(this.path, JSON.stringify(sealRecord(record)), 0o600);
    this.mirror(record, false);
  }

  /** The CA file text for a record: every link root it trusts. */
  static caText(record: DeviceRecord): string {
    return anchorsOf(record).map((p) => p.trim()).join('\n') + '\n';
  }

  private mirror(record: DeviceRecord, onlyIfStale: boolean): void {
    const want: [string, string][] = [[this.link.ca, LinkStore.caText(record)], [this.link.cert, record.identity.active.cert.trim() + '\n']];
    for (const [file, text] of want) {
      if (onlyIfStale && existsSync(file) && readFileSync(file, 'utf8') === text) continue;
      writeFileDurable(file, text, 0o644);
    }
  }
}
