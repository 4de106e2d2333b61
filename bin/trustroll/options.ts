/**
 * What the `trustroll` command groups share: number and duration parsers
 * for options, the data folder option, and opening the data folder's fleet
 * database and CA with the error that says what to fix.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ManagerError } from '../../manager/errors.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { CaAuthority } from '../../manager/pki/ca-authority.ts';
import { ServiceDb } from '../../manager/service/service-db.ts';

/** A positive whole number. */
export const int = (v: string) => {
  const n = Number.parseInt(v, 10);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`expected a positive integer, got "${v}"`);
  return n;
};

/** "90s", "30m", "12h", "3d" or plain seconds, as whole seconds. */
export function parseDuration(v: string): number {
  const m = /^(\d+)\s*(s|m|h|d)?$/.exec(v.trim());
  const n = m ? Number(m[1]) * ({ s: 1, m: 60, h: 3600, d: 86_400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd']) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`expected a duration such as 90s, 30m, 12h or 3d, got "${v}"`);
  return n;
}

/** The manager's data folder: CA state and keys under ca/, the fleet database manager.db. */
export const dataOption = ['--data <dir>', 'manager data folder', process.env.TRUSTROLL_DATA ?? './trustroll-data'] as const;

/** Run `fn` on the data folder's fleet database; E_MANAGER_DB when there is none. */
export function withFleetDb<T>(data: string, fn: (db: FleetDb) => T): T {
  if (!existsSync(join(data, 'manager.db'))) throw new ManagerError('E_MANAGER_DB', `no manager database in ${data}; check --data`);
  const db = new FleetDb(join(data, 'manager.db'));
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/** Run `fn` on the data folder's service tables (operators' API tokens). */
export function withServiceDb(data: string, fn: (sdb: ServiceDb) => void): void {
  withFleetDb(data, (db) => fn(new ServiceDb(db)));
}

/** The data folder's CA; E_NO_ROOT before `trustroll ca init`. */
export async function openCa(data: string): Promise<CaAuthority> {
  if (!existsSync(join(data, 'ca', 'ca.json'))) throw new ManagerError('E_NO_ROOT', `no CA in ${data}; run "trustroll ca init --data ${data} --subject ..." first`);
  return CaAuthority.openOrInit(join(data, 'ca'), { subject: 'unused', now: new Date() });
}
