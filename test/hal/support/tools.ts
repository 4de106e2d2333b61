/**
 * Checks that the Debian tools a backend test needs are installed. A missing
 * tool fails the test run loudly (CI installs them); nothing is skipped.
 */
import { existsSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/** Debian package that provides each tool the HAL tests use. */
export const TOOL_PACKAGES: Record<string, string> = {
  '/usr/lib/softhsm/libsofthsm2.so': 'softhsm2',
  '/usr/bin/swtpm': 'swtpm',
  '/usr/bin/swtpm_ioctl': 'swtpm-tools',
  '/usr/bin/tpm2_getrandom': 'tpm2-tools',
  '/usr/sbin/tpm2-abrmd': 'tpm2-abrmd',
  '/usr/lib/x86_64-linux-gnu/libtss2-tcti-tabrmd.so.0': 'libtss2-tcti-tabrmd0',
  '/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so': 'libtpm2-pkcs11-1',
  '/usr/bin/dbus-daemon': 'dbus-daemon',
  '/usr/bin/stunnel4': 'stunnel4',
  '/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so': 'libengine-pkcs11-openssl',
};

/** Throws naming the Debian packages to install if any of `paths` is missing. */
export function requireTools(...paths: string[]): void {
  const missing = paths.filter((p) => !existsSync(p));
  if (missing.length) {
    const pkgs = [...new Set(missing.map((p) => TOOL_PACKAGES[p] ?? p))].join(' ');
    throw new Error(`HAL test prerequisites missing: ${missing.join(', ')} — apt-get install -y ${pkgs}`);
  }
}

/** Runs a command and returns stdout; rejects with stderr on failure. */
export const run = promisify(execFile);
