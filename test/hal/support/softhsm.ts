/**
 * A private SoftHSM2 instance for one test file: its own token directory and
 * SOFTHSM2_CONF in a temp dir, one token provisioned through the HAL's own
 * provisionToken. Removed again by `stop()`.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { provisionToken } from '../../../hal/pkcs11/provision.ts';
import { requireTools } from './tools.ts';

/** Path of Debian's SoftHSM2 PKCS#11 module. */
export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

/** A running SoftHSM2 token set. */
export interface SoftHsm {
  readonly dir: string;
  readonly env: Record<string, string>;
  readonly tokenLabel: string;
  readonly pin: string;
  stop(): Promise<void>;
}

/** Creates the token directory and provisions token `tokenLabel`. */
export async function startSoftHsm(tokenLabel = 'trustroll-test'): Promise<SoftHsm> {
  requireTools(SOFTHSM_MODULE);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hal-softhsm-'));
  await fs.mkdir(path.join(dir, 'tokens'));
  const conf = path.join(dir, 'softhsm2.conf');
  await fs.writeFile(conf, `directories.tokendir = ${dir}/tokens\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  const env = { SOFTHSM2_CONF: conf };
  const pin = '246810';
  await provisionToken({ module: SOFTHSM_MODULE, env, tokenLabel, soPin: '13579135', userPin: pin });
  return { dir, env, tokenLabel, pin, stop: () => fs.rm(dir, { recursive: true, force: true }) };
}
