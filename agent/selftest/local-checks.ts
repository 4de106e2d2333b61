/**
 * The self-test's checks that need nothing but the device itself: the key
 * is usable in the HAL, the trust store is intact, and the certificate the
 * device presents chains to a root it trusts and is not about to expire.
 */
import { randomBytes, verify, X509Certificate } from 'node:crypto';
import type { AgentConfig } from '../config.ts';
import { anchorsOf, identitiesOf, type DeviceRecord } from '../device-record.ts';
import type { ReadOnlyDevice } from '../read-only.ts';
import { SqliteStateStore } from '../sqlite-state-store.ts';
import { verifyChain } from '../../protocol/chain.ts';
import { PROTOCOL_ERRORS } from '../../protocol/errors.ts';
import { dn, fingerprint, validity } from '../../protocol/pem.ts';
import { codeOf, plainMessage, type CertSummary, type Check } from './report.ts';

const DAY = 86_400_000;
/** Warn when a certificate the device needs expires within this many days. */
export const EXPIRY_WARN_DAYS = 30;

/** What to do when the key backend fails, by code and backend. */
export function halAction(config: AgentConfig, err: unknown): string {
  const keys = config.hal.keys;
  const setting = (err as { setting?: string }).setting;
  switch (codeOf(err)) {
    case 'E_HAL_TPM_ABSENT':
      if (keys.backend === 'tpm' && keys.tcti.startsWith('tabrmd')) return 'the HAL key is not reachable: check that the TPM resource manager (tpm2-abrmd) is running (systemctl status tpm2-abrmd) and the setting hal.keys.tcti';
      if (keys.backend === 'tpm' && keys.tcti.startsWith('swtpm')) return 'the HAL key is not reachable: check that the software TPM (swtpm) listens at the socket named in hal.keys.tcti';
      return 'the HAL key is not reachable: check that the TPM device in hal.keys.tcti (e.g. /dev/tpmrm0) exists and the agent may open it';
    case 'E_HAL_TOKEN_MISSING':
      return 'check hal.keys.tokenLabel and that the token is present (secure element connected; for SoftHSM2 the SOFTHSM2_CONF in hal.keys.moduleEnv must point at the token folder)';
    case 'E_HAL_PIN':
      return 'check hal.keys.pin / hal.keys.pinFile; a locked user PIN must be reset with the security officer PIN';
    case 'E_HAL_KEY_NOT_FOUND':
      return 'the device cannot authenticate without its key: restore the key store from backup, or make a new key (trustroll-agent init), have the manager enroll it and provision the device again';
    case 'E_HAL_UNSEAL':
      return 'check hal.keys.kekFile: the key-encryption key must be the one the keys were sealed with';
    case 'E_HAL_RECORD_CORRUPT':
      return 'the key image in the EEPROM is damaged: replace the part or provision the device again';
    case 'E_HAL_CONFIG':
      if (setting === 'keys.module') return `check hal.keys.module: the PKCS#11 module must exist and load (${keys.backend === 'pkcs11' ? keys.module : 'see the message'})`;
      // HAL settings are named relative to "hal" (keys.module) by the HAL, in full (hal.keys.dir) by the agent's own checks.
      return `fix the setting ${setting ? (setting.startsWith('hal.') ? setting : `hal.${setting}`) : 'named in the message'} in the agent configuration`;
    default:
      return `check the key backend (${keys.backend}) and the agent log; see docs/errors.md for ${codeOf(err) ?? 'the error'}`;
  }
}

/** The key check: each identity's HAL key signs a random challenge that verifies under its certificate's public key. */
export async function keyCheck(dev: ReadOnlyDevice): Promise<Check> {
  const backend = dev.config.hal.keys.backend;
  if (!dev.hal) {
    return { name: 'key', status: 'fail', code: codeOf(dev.halError), message: `the key backend (${backend}) did not open: ${plainMessage(dev.halError)}`, action: halAction(dev.config, dev.halError) };
  }
  if (!dev.record) return { name: 'key', status: 'skipped', message: 'no readable trust store names the key and certificate to check (see the store check)' };
  const keys = dev.hal.keys;
  const challenge = randomBytes(32);
  const checked: string[] = [];
  for (const id of identitiesOf(dev.record)) {
    const cert = new X509Certificate(id.cert);
    const fp = fingerprint(cert).slice(0, 16);
    let sig: Buffer;
    try {
      const info = await keys.get(id.keyLabel);
      if (!info) return { name: 'key', status: 'fail', code: 'E_HAL_KEY_NOT_FOUND', message: `the device key "${id.keyLabel}" is not in the HAL (${backend})`, action: halAction(dev.config, { code: 'E_HAL_KEY_NOT_FOUND' }) };
      sig = await keys.sign(id.keyLabel, challenge);
    } catch (err) {
      return { name: 'key', status: 'fail', code: codeOf(err), message: `the device key "${id.keyLabel}" (${backend}) cannot sign: ${plainMessage(err)}`, action: halAction(dev.config, err) };
    }
    if (!verify('sha256', challenge, cert.publicKey, sig)) {
      return {
        name: 'key', status: 'fail', code: 'E_LEAF_KEY_MISMATCH',
        message: `the device key "${id.keyLabel}" signs, but its signature does not verify with the certificate it presents (sha256 ${fp}…): the certificate is for another key`,
        action: PROTOCOL_ERRORS.E_LEAF_KEY_MISMATCH,
      };
    }
    checked.push(`"${id.keyLabel}" for the certificate sha256 ${fp}…`);
  }
  const health = await keys.health().catch((err: Error) => ({ ok: false, backend, detail: err.message }));
  const message = `the HAL key (${backend}: ${health.detail}) signed a random challenge, and the signature verifies with the public key of each certificate the device presents (${[...new Set(checked)].join('; ')})`;
  if (!health.ok) return { name: 'key', status: 'warn', message, action: `the key backend reports a problem (${health.detail}); check it before it fails`, details: { health } };
  return { name: 'key', status: 'ok', message, details: { backend, health: health.detail } };
}

function storeWhere(config: AgentConfig): string {
  return config.store.kind === 'sqlite' ? `SQLite file ${config.store.path}` : `HAL record "${config.store.name ?? 'device-state'}" (${config.hal.records.backend})`;
}

function storeAction(err: unknown): string {
  switch (codeOf(err)) {
    case 'E_STORE_CORRUPT': return 'do not edit it: move the damaged store aside (keep it for analysis), provision the device again (trustroll-agent provision with the fleet\'s current root and the device certificate from the manager), then let the manager resume its rotation';
    case 'E_AGENT_NOT_PROVISIONED': return 'provision the device: trustroll-agent init, trustroll enroll on the manager, trustroll-agent provision';
    case 'E_AGENT_CONFIG': return 'fix deviceId/role (or store.path) in the agent configuration so they name this device\'s own store';
    case 'E_STORE_IO': return 'fix the HAL first (see the key check); the store lives in it';
    default: return 'check the storage and the agent log';
  }
}

/** The store check: the record opens read-only, its content hash verifies, and SQLite finds no damaged page. */
export function storeCheck(dev: ReadOnlyDevice): Check {
  const where = storeWhere(dev.config);
  if (dev.storeError || !dev.record) {
    return { name: 'store', status: 'fail', code: codeOf(dev.storeError), message: `the trust store (${where}) cannot be used: ${plainMessage(dev.storeError)}`, action: storeAction(dev.storeError) };
  }
  const problems = dev.store instanceof SqliteStateStore ? dev.store.integrityProblems() : null;
  if (problems) return { name: 'store', status: 'fail', code: 'E_STORE_CORRUPT', message: `the trust store (${where}) has damaged pages: ${problems}`, action: storeAction({ code: 'E_STORE_CORRUPT' }) };
  const r = dev.record;
  const rotation = r.rotation ? `; rotation ${r.rotation.id} (${r.rotation.schedule}), done ${r.rotation.completed.join(', ') || 'none'}` : '';
  return {
    name: 'store', status: 'ok',
    message: `the trust store (${where}) is intact: content hash verified${dev.store instanceof SqliteStateStore ? ', SQLite quick_check ok' : ''}; last command #${r.lastSeq}${rotation}`,
  };
}

/** Slot names of the roots a record holds, in the order a TLS stack loads them (`issuer`: its own issuer's slots, separate roots). */
function rootSlots(record: DeviceRecord, which: 'trust' | 'issuer' = 'trust'): { slot: string; pem: string }[] {
  const t = which === 'issuer' && record.issuer ? record.issuer : record.trust;
  const pre = which === 'issuer' && record.issuer ? 'issuer ' : '';
  return [
    { slot: `${pre}current root`, pem: t.current },
    ...(t.distribution ? [{ slot: `${pre}distribution root D (NewWithOld)`, pem: t.distribution }] : []),
    ...(t.next ? [{ slot: `${pre}new root R1 (NewWithNew)`, pem: t.next }] : []),
  ];
}

function summary(slot: string, pem: string): CertSummary {
  const c = new X509Certificate(pem);
  return { slot, subject: dn(c.subject), sha256: fingerprint(c), notAfter: validity(c).notAfter.toISOString() };
}

/** The roots a record trusts and the certificates it presents, for the report. */
export function trustSummary(record: DeviceRecord): { trusts: CertSummary[]; presents: CertSummary[] } {
  const ids = identitiesOf(record);
  return {
    trusts: rootSlots(record).map((r) => summary(r.slot, r.pem)),
    presents: ids.map((id, i) => summary(ids.length > 1 ? (i === 0 ? 'new certificate (presented first)' : 'old certificate (fallback)') : 'device certificate', id.cert)),
  };
}

/** The chain check: the presented certificate chains to a held root and is not expired (warn within 30 days). */
export function chainCheck(dev: ReadOnlyDevice, now: Date): Check {
  if (!dev.record) return { name: 'chain', status: 'skipped', message: 'no readable trust store (see the store check)' };
  const record = dev.record;
  // A separate-roots device's certificate chains to its issuer's root, not to the root it verifies peers with.
  const roots = rootSlots(record, 'issuer').map((r) => ({ ...r, cert: new X509Certificate(r.pem) }));
  const slotOf = (c: X509Certificate) => roots.find((r) => r.cert.raw.equals(c.raw))?.slot ?? dn(c.subject);
  const anchors = roots.map((r) => r.cert);
  const trusted = `the device trusts ${roots.map((r) => `${r.slot} "${dn(r.cert.subject)}"`).join(', ')}`;
  const ids = identitiesOf(record);
  const warnings: string[] = [];
  let message = '';
  for (const [i, id] of ids.entries()) {
    const leaf = new X509Certificate(id.cert);
    const what = i === 0 ? (ids.length > 1 ? 'the new certificate' : 'the device certificate') : 'the old certificate (fallback)';
    const path = verifyChain(leaf, anchors, now, record.role);
    const daysLeft = Math.floor((validity(leaf).notAfter.getTime() - now.getTime()) / DAY);
    if (i === 0) {
      if (daysLeft < 0) {
        return { name: 'chain', status: 'fail', code: 'E_VALIDITY', message: `${what} (${dn(leaf.subject)}) expired on ${validity(leaf).notAfter.toISOString()}; ${trusted}`, action: 'the device cannot authenticate: have the manager issue a new certificate (a rotation or re-enrollment) and provision it' };
      }
      if (!path.ok) {
        return { name: 'chain', status: 'fail', code: 'E_VERIFY_LEAF', message: `${what} (${dn(leaf.subject)}, issuer ${dn(leaf.issuer)}) does not chain to a root the device trusts: ${path.reason}; ${trusted}`, action: 'peers cannot verify this device: re-provision it with a certificate from the fleet\'s current CA' };
      }
      message = `${what} (${dn(leaf.subject)}) chains to ${path.path.slice(1).map(slotOf).join(' -> ')}, valid for ${daysLeft} more days; ${trusted}`;
      if (daysLeft < EXPIRY_WARN_DAYS) warnings.push(`${what} expires in ${daysLeft} days (${validity(leaf).notAfter.toISOString()}): have the manager issue a new one before then`);
    } else if (!path.ok) warnings.push(`${what} no longer chains to a trusted root (${path.reason}); servers still on the old root will refuse it`);
  }
  for (const r of roots) {
    const daysLeft = Math.floor((validity(r.cert).notAfter.getTime() - now.getTime()) / DAY);
    if (daysLeft < EXPIRY_WARN_DAYS) warnings.push(`${r.slot} "${dn(r.cert.subject)}" ${daysLeft < 0 ? 'has expired' : `expires in ${daysLeft} days`}: rotate the fleet's root before then`);
  }
  const anchorsHeld = anchorsOf(record).length;
  if (warnings.length) return { name: 'chain', status: 'warn', code: 'E_VALIDITY', message: `${message}; but ${warnings.join('; ')}`, action: warnings.join('; '), details: { roots: anchorsHeld } };
  return { name: 'chain', status: 'ok', message, details: { roots: anchorsHeld } };
}
