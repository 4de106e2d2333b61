/**
 * What the OpenSSL/GnuTLS cross-checks read of a provisioned demo or test
 * fleet on disk (demo/device-provisioning.ts layout): each device's roots
 * and identities from its trust store, and its file-HAL key.
 */
import { join } from 'node:path';
import { anchorsOf, identitiesOf } from '../agent/device-record.ts';
import { SqliteStateStore } from '../agent/sqlite-state-store.ts';
import { FileKeyStore } from '../hal/file/file-key-store.ts';
import type { Role } from '../protocol/steps.ts';
import type { CrossStackDevice } from './cross-stack.ts';

/** The devices' roots and identities as stored on disk right now (read-only, integrity-checked). */
export function captureFromDisk(root: string, ids: readonly [string, Role][]): Promise<CrossStackDevice[]> {
  // Each load runs synchronously up to its return, so every device is read at this instant.
  return Promise.all(ids.map(async ([id, role]) => {
    const store = new SqliteStateStore(join(root, 'devices', id, 'trust-store.db'), {}, { readonly: true });
    try {
      const r = await store.load();
      if (!r) throw new Error(`device ${id} has no trust store`);
      return { id, role, anchors: anchorsOf(r), identities: identitiesOf(r).map((i) => ({ ...i })) };
    } finally {
      await store.close();
    }
  }));
}

/** The PEM private key of a device's file-HAL key `label`. */
export async function keyPemOf(deviceDir: string, label: string): Promise<string> {
  const keys = await FileKeyStore.open(join(deviceDir, 'keys'));
  try {
    const ref = await keys.tlsKey(label);
    if (ref.kind !== 'pem') throw new Error(`key ${label} is not an in-memory key`);
    return ref.keyPem;
  } finally {
    await keys.close();
  }
}
