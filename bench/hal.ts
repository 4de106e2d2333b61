/**
 * HAL benchmark: prints one JSON object with sign latency (p50/p99, ms) per
 * key backend, record write latency per record backend, and the rejected
 * TPM route (tpm2-tools, one process per signature) for comparison. Starts
 * its own SoftHSM2 token and swtpm like the tests do.
 *   node --import tsx bench/hal.ts
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { KeyStore } from '../hal/key-store.ts';
import type { RecordStore } from '../hal/record-store.ts';
import { openHal } from '../hal/config.ts';
import { provisionToken } from '../hal/pkcs11/provision.ts';
import { DEFAULT_TPM2_PKCS11_MODULE, tpmModuleEnv } from '../hal/tpm/tpm-key-store.ts';
import { SOFTHSM_MODULE, startSoftHsm } from '../test/hal/support/softhsm.ts';
import { startSwTpm } from '../test/hal/support/swtpm.ts';
import { run } from '../test/hal/support/tools.ts';

const SIGNS = 200;
const WRITES = 100;

function stats(ms: number[]): { n: number; p50: number; p99: number } {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => Number(s[Math.min(s.length - 1, Math.floor(q * s.length))]!.toFixed(3));
  return { n: s.length, p50: at(0.5), p99: at(0.99) };
}

async function time(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return out;
}

async function benchSign(keys: KeyStore): Promise<ReturnType<typeof stats>> {
  await keys.create('bench', 'P-256');
  const tbs = crypto.randomBytes(400);
  await keys.sign('bench', tbs);
  return stats(await time(SIGNS, () => keys.sign('bench', tbs)));
}

async function benchWrite(records: RecordStore): Promise<ReturnType<typeof stats>> {
  const value = crypto.randomBytes(1024);
  return stats(await time(WRITES, (i) => records.write('trust', Buffer.concat([value, Buffer.from([i & 0xff])]))));
}

async function main(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hal-bench-'));
  const hsm = await startSoftHsm('bench');
  const tpm = await startSwTpm();
  const result: Record<string, unknown> = { unit: 'ms', signs: SIGNS, writes: WRITES, recordBytes: 1025, sign: {}, recordWrite: {} };
  const sign = result.sign as Record<string, unknown>;
  const write = result.recordWrite as Record<string, unknown>;
  try {
    const eeprom = { device: path.join(dir, 'chip.bin'), size: 32768, pageSize: 64, writeGranularity: 4 };
    let hal = await openHal({ keys: { backend: 'file', dir: `${dir}/keys` }, records: { backend: 'file', dir: `${dir}/records` } });
    sign.file = await benchSign(hal.keys);
    write.file = await benchWrite(hal.records);
    await hal.keys.close();
    await hal.records.close();

    hal = await openHal({ keys: { backend: 'eeprom', protection: 'plain' }, records: { backend: 'eeprom' }, eeprom });
    sign.eeprom = await benchSign(hal.keys);
    write.eeprom = await benchWrite(hal.records);
    await hal.keys.close();
    await hal.records.close();

    hal = await openHal({
      keys: { backend: 'pkcs11', module: SOFTHSM_MODULE, tokenLabel: 'bench', pin: hsm.pin, moduleEnv: hsm.env },
      records: { backend: 'file', dir: `${dir}/records2` },
    });
    sign['pkcs11 (SoftHSM2)'] = await benchSign(hal.keys);
    await hal.keys.close();
    await hal.records.close();

    process.env.DBUS_SESSION_BUS_ADDRESS = tpm.busAddress;
    const storeDir = path.join(dir, 'tpm2-pkcs11');
    await fs.mkdir(storeDir, { mode: 0o700 });
    await provisionToken({ module: DEFAULT_TPM2_PKCS11_MODULE, env: tpmModuleEnv({ tcti: tpm.tcti, storeDir }), tokenLabel: 'bench', soPin: '11112222', userPin: '33334444' });
    hal = await openHal({ keys: { backend: 'tpm', tcti: tpm.tcti, storeDir, tokenLabel: 'bench', pin: '33334444' }, records: { backend: 'file', dir: `${dir}/records3` } });
    sign['tpm (swtpm via tpm2-pkcs11, chosen)'] = await benchSign(hal.keys);
    await hal.keys.close();
    await hal.records.close();

    const env = { ...process.env, TPM2TOOLS_TCTI: tpm.tcti };
    const t = (args: string[]) => run(args[0]!, args.slice(1), { env, cwd: dir });
    await t(['tpm2_createprimary', '-Q', '-C', 'o', '-G', 'ecc256', '-c', 'prim.ctx']);
    await t(['tpm2_create', '-Q', '-C', 'prim.ctx', '-G', 'ecc256:ecdsa', '-u', 'k.pub', '-r', 'k.priv']);
    await t(['tpm2_load', '-Q', '-C', 'prim.ctx', '-u', 'k.pub', '-r', 'k.priv', '-c', 'k.ctx']);
    await t(['tpm2_evictcontrol', '-Q', '-C', 'o', '-c', 'k.ctx', '0x81000100']);
    await fs.writeFile(path.join(dir, 'd.bin'), crypto.randomBytes(32));
    sign['tpm (swtpm via tpm2-tools, one process per signature, rejected)'] = stats(
      await time(30, () => t(['tpm2_sign', '-Q', '-c', '0x81000100', '-g', 'sha256', '-d', '-f', 'plain', '-o', 's.bin', 'd.bin'])),
    );
  } finally {
    await tpm.stop();
    await hsm.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
}

await main();
