/**
 * Where a device keeps its management-link material while that PKI's root
 * rotates: one sealed JSON record (the same shape and integrity hash as the
 * device's trust-store record: link roots R0/D/R1, the link certificate and
 * its fallback, the link rotation's progress, results for redeliveries),
 * `link-state.json` in the agent's link folder under its state folder
 * (`<stateDir>/link`, /var/lib/trustroll/link on the image).
 *
 * The configured `link.ca` and `link.cert` (/etc/trustroll, read-only) are
 * only the factory's first material: once a record exists it is the truth
 * (`linkMaterialOf`), and after each durable save the agent writes beside
 * it `link-ca.pem` (every trusted link root) and `link-cert.pem` (the
 * certificate presented first), for the technician. The record remembers
 * the SHA-256 of the configured certificate it started from: when that file
 * changes (the device was provisioned again), the configured files win.
 *
 * Devices that kept `link-state.json` beside `link.cert` (before this
 * layout): the record is read there, copied durably into the link folder on
 * open, and written only there from then on.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ProtocolError } from '../../protocol/errors.ts';
import type { DeviceRecord } from '../device-record.ts';
import { anchorsOf } from '../device-record.ts';
import type { LinkConfig } from '../config.ts';
import { openRecord, sealRecord } from '../state-store.ts';
import { makeDirDurable, writeFileDurable } from './durable-file.ts';

/** The label the link key has inside a link record (the key itself stays where `link.key`/`link.keyLabel` says). */
export const LINK_KEY_LABEL = 'link';

/** The files of a link folder. */
export const LINK_FILES = { record: 'link-state.json', ca: 'link-ca.pem', cert: 'link-cert.pem' } as const;

/** Where the record lives (`dir`, the agent's link folder) and where the configured factory files are. */
export interface LinkStorePlace {
  dir: string;
  link: Pick<LinkConfig, 'ca' | 'cert'>;
}

/** The link material in force when a record exists: the record's, and which file it came from. */
export interface RotatedLink {
  ca: string;
  cert: string;
  /** The record file it came from. */
  path: string;
  /** `state`: the link folder; `legacy`: beside link.cert, where earlier versions kept it (copied on the agent's next start). */
  source: 'state' | 'legacy';
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** The SHA-256 of the configured link certificate (empty string when unreadable). */
function factoryStamp(link: Pick<LinkConfig, 'cert'>): string {
  try {
    return sha256(readFileSync(link.cert, 'utf8'));
  } catch {
    return '';
  }
}

/** Read a sealed record file; E_STORE_CORRUPT on a failed integrity check. */
function readSealed(path: string): { record: DeviceRecord; factory: string | null } {
  let sealed: { body?: unknown; hash?: unknown; factory?: unknown };
  try {
    sealed = JSON.parse(readFileSync(path, 'utf8')) as typeof sealed;
  } catch (err) {
    throw new ProtocolError('E_STORE_CORRUPT', `${path}: link record unreadable (${(err as Error).message})`);
  }
  if (typeof sealed.body !== 'string' || typeof sealed.hash !== 'string') throw new ProtocolError('E_STORE_CORRUPT', `${path}: not a sealed link record`);
  if (sealed.factory !== undefined && (typeof sealed.factory !== 'string' || !/^[0-9a-f]{64}$/.test(sealed.factory))) throw new ProtocolError('E_STORE_CORRUPT', `${path}: bad factory stamp`);
  return { record: openRecord(sealed.body, sealed.hash, path), factory: (sealed.factory as string | undefined) ?? null };
}

/** The record file in force: the link folder's (unless the configured certificate changed since), else the legacy one beside link.cert; null for none. */
function recordFile(place: LinkStorePlace): { path: string; source: RotatedLink['source'] } | null {
  const path = join(place.dir, LINK_FILES.record);
  const legacy = join(dirname(resolve(place.link.cert)), LINK_FILES.record);
  if (existsSync(path)) return { path, source: 'state' };
  if (legacy !== resolve(path) && existsSync(legacy)) return { path: legacy, source: 'legacy' };
  return null;
}

/** The CA file text for a record: every link root it trusts. */
function caText(record: DeviceRecord): string {
  return anchorsOf(record).map((p) => p.trim()).join('\n') + '\n';
}

/** The link material a record holds: newest durable copy first; null when the configured (factory) files are in force. Reads only. */
export function linkMaterialOf(place: LinkStorePlace): RotatedLink | null {
  const at = recordFile(place);
  if (!at) return null;
  const { record, factory } = readSealed(at.path);
  if (factory !== null && factory !== factoryStamp(place.link)) return null;
  return { ca: caText(record), cert: record.identity.active.cert.trim() + '\n', ...at };
}

/** Durable storage of the link record and its copies of the CA and certificate. */
export class LinkStore {
  readonly path: string;
  private factory: string;

  constructor(private readonly place: LinkStorePlace) {
    this.path = join(place.dir, LINK_FILES.record);
    this.factory = factoryStamp(place.link);
  }

  /** The record in force, or null before the first link rotation (or after a new provisioning). A legacy record is copied here first. */
  load(): DeviceRecord | null {
    const at = recordFile(this.place);
    if (!at) return null;
    const { record, factory } = readSealed(at.path);
    if (factory !== null && factory !== this.factory) return null;
    if (at.source === 'legacy') this.save(record);
    else this.copies(record, true);
    return record;
  }

  /** Durably replace the record, then its CA and certificate copies; returns only when all of it survives power loss. */
  save(record: DeviceRecord): void {
    makeDirDurable(this.place.dir);
    writeFileDurable(this.path, JSON.stringify({ ...sealRecord(record), factory: this.factory }), 0o600);
    this.copies(record, false);
  }

  /** The CA file text for a record: every link root it trusts. */
  static caText(record: DeviceRecord): string {
    return caText(record);
  }

  private copies(record: DeviceRecord, onlyIfStale: boolean): void {
    const want: [string, string][] = [[join(this.place.dir, LINK_FILES.ca), caText(record)], [join(this.place.dir, LINK_FILES.cert), record.identity.active.cert.trim() + '\n']];
    for (const [file, text] of want) {
      if (onlyIfStale && existsSync(file) && readFileSync(file, 'utf8') === text) continue;
      writeFileDurable(file, text, 0o644);
    }
  }
}
