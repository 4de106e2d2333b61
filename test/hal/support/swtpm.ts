/**
 * A private TPM for one test file: swtpm on a Unix socket in a temp dir
 * (`--flags startup-clear`), a private D-Bus session bus, and tpm2-abrmd as
 * resource manager (the stand-in for the kernel's /dev/tpmrm0, so the agent
 * and the TLS terminator can share the TPM). Never a system instance.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { requireTools, run } from './tools.ts';

/** A running swtpm + tpm2-abrmd pair. */
export interface SwTpm {
  readonly dir: string;
  /** TCTI for clients: tabrmd on the private bus. */
  readonly tcti: string;
  /** The D-Bus address clients must have in DBUS_SESSION_BUS_ADDRESS. */
  readonly busAddress: string;
  stop(): Promise<void>;
}

async function waitFor(check: () => Promise<boolean> | boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((r) => {
    c.once('exit', () => r());
    c.kill('SIGTERM');
  });
}

/** Starts swtpm, a private bus and tpm2-abrmd; resolves once the TPM answers through abrmd. */
export async function startSwTpm(): Promise<SwTpm> {
  requireTools('/usr/bin/swtpm', '/usr/bin/swtpm_ioctl', '/usr/bin/tpm2_getrandom', '/usr/sbin/tpm2-abrmd', '/usr/bin/dbus-daemon', '/usr/lib/x86_64-linux-gnu/libtss2-tcti-tabrmd.so.0');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hal-swtpm-'));
  const sock = path.join(dir, 'tpm.sock');
  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const c of children.reverse()) await stopChild(c);
    await fs.rm(dir, { recursive: true, force: true });
  };
  try {
    await fs.mkdir(path.join(dir, 'state'));
    const swtpm = spawn('swtpm', ['socket', '--tpm2', '--tpmstate', `dir=${dir}/state`, '--server', `type=unixio,path=${sock}`, '--ctrl', `type=unixio,path=${sock}.ctrl`, '--flags', 'startup-clear'], { stdio: 'ignore' });
    children.push(swtpm);
    await waitFor(() => existsSync(sock) && existsSync(`${sock}.ctrl`), 'swtpm sockets');
    const busAddress = `unix:path=${dir}/bus`;
    const bus = spawn('dbus-daemon', ['--session', '--nofork', `--address=${busAddress}`], { stdio: 'ignore' });
    children.push(bus);
    await waitFor(() => existsSync(`${dir}/bus`), 'private D-Bus');
    const name = `com.intel.tss2.Tabrmd.t${crypto.randomBytes(4).toString('hex')}`;
    const env = { ...process.env, DBUS_SESSION_BUS_ADDRESS: busAddress };
    const abrmd = spawn('tpm2-abrmd', ['--session', `--dbus-name=${name}`, `--tcti=swtpm:path=${sock}`, '--allow-root'], { env, stdio: 'ignore' });
    children.push(abrmd);
    const tcti = `tabrmd:bus_type=session,bus_name=${name}`;
    await waitFor(
      () =>
        run('tpm2_getrandom', ['-T', tcti, '4'], { env: { ...env, TSS2_LOG: 'all+none' }, encoding: 'buffer' }).then(
          () => true,
          () => abrmd.exitCode === null || Promise.reject(new Error('tpm2-abrmd exited')),
        ).then((ok) => ok === true),
      'tpm2-abrmd',
    );
    return { dir, tcti, busAddress, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
