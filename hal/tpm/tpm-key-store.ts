/**
 * The TPM 2.0 backend: the TPM presented as a PKCS#11 token by tpm2-pkcs11
 * (Debian libtpm2-pkcs11-1), driven by the same Pkcs11KeyStore as SoftHSM2.
 * Keys are created by TPM2_Create under the token's primary key (SRK) and
 * sign inside the TPM; only TPM-wrapped blobs live in the store directory.
 * Chosen over spawning tpm2-tools per operation: one binding serves both
 * backends (and the TLS terminator), sessions stay open, no subprocess per
 * signature (numbers in docs/hal.md).
 */
import fs from 'node:fs';
import { HalError } from '../errors.ts';
import { Pkcs11KeyStore } from '../pkcs11/pkcs11-key-store.ts';

/** Where Debian's libtpm2-pkcs11-1 installs the module. */
export const DEFAULT_TPM2_PKCS11_MODULE = '/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so';

/** Settings of `keys` when `keys.backend` is "tpm". */
export interface TpmKeyOptions {
  /** TSS2 TCTI string: "device:/dev/tpmrm0" on devices, "tabrmd:..." or "swtpm:path=..." in tests. */
  readonly tcti: string;
  /** tpm2-pkcs11 store directory (sqlite with TPM-wrapped key blobs). */
  readonly storeDir: string;
  readonly tokenLabel: string;
  readonly pin: string;
  readonly pinSetting: string;
  readonly module?: string;
}

/** The environment tpm2-pkcs11 reads for this TPM and store. */
export function tpmModuleEnv(o: Pick<TpmKeyOptions, 'tcti' | 'storeDir'>): Record<string, string> {
  return { TPM2_PKCS11_TCTI: o.tcti, TPM2_PKCS11_STORE: o.storeDir };
}

/** Fails fast with E_HAL_TPM_ABSENT when the TCTI names a device or socket that is not there. */
export function checkTctiReachable(tcti: string): void {
  const [kind, conf = ''] = tcti.split(/:(.*)/s);
  let path: string | undefined;
  if (kind === 'device') path = conf || '/dev/tpmrm0';
  else if (kind === 'swtpm' || kind === 'mssim') path = /(?:^|,)path=([^,]+)/.exec(conf)?.[1];
  if (path !== undefined && !fs.existsSync(path)) {
    throw new HalError('E_HAL_TPM_ABSENT', `TPM at ${path} does not exist (TCTI "${kind}")`, { setting: 'keys.tcti' });
  }
}

/** Opens the TPM-backed key store; E_HAL_TPM_ABSENT naming `keys.tcti` if the TPM does not answer. */
export async function openTpmKeyStore(o: TpmKeyOptions): Promise<Pkcs11KeyStore> {
  checkTctiReachable(o.tcti);
  try {
    fs.mkdirSync(o.storeDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new HalError('E_HAL_CONFIG', `cannot create tpm2-pkcs11 store ${o.storeDir}: ${(err as Error).message}`, { setting: 'keys.storeDir', cause: err });
  }
  return Pkcs11KeyStore.open({
    backend: 'tpm',
    module: o.module ?? DEFAULT_TPM2_PKCS11_MODULE,
    tokenLabel: o.tokenLabel,
    pin: o.pin,
    pinSetting: o.pinSetting,
    env: tpmModuleEnv(o),
    initFailure: { code: 'E_HAL_TPM_ABSENT', setting: 'keys.tcti' },
  });
}
