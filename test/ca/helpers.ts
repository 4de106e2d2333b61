/**
 * Shared helpers of the CA tests: a temporary directory removed after the
 * suite, the openssl CLI (exit status and output, never throwing), and
 * quick access to certificate parts.
 */
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { children, readTlv } from '../../protocol/der-reader.ts';
import { pemToDer } from '../../manager/ca/pem.ts';

/** A scratch directory for files handed to openssl. */
export class TmpDir {
  readonly path = mkdtempSync(join(tmpdir(), 'trustroll-ca-'));

  /** Write `data` to `name` inside the directory; returns the full path. */
  file(name: string, data: string | Buffer): string {
    const p = join(this.path, name);
    writeFileSync(p, data);
    return p;
  }

  /** Remove the directory and everything in it. */
  remove(): void {
    rmSync(this.path, { recursive: true, force: true });
  }
}

/** Result of one CLI run. */
export interface Run {
  readonly ok: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run a command with `args` (and optional stdin); never throws on a non-zero exit. */
export function run(cmd: string, args: readonly string[], input?: string | Buffer): Run {
  const r = spawnSync(cmd, args, { input, timeout: 30_000 });
  if (r.error) throw r.error;
  return { ok: r.status === 0, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8') };
}

/** openssl with `args`. */
export function openssl(...args: string[]): Run {
  return run('openssl', args);
}

/**
 * `openssl verify` against exactly `caFile` (no system store), strict
 * X.509 checking, with optional extra arguments (-purpose, -untrusted).
 */
export function opensslVerify(caFile: string, certFile: string, ...extra: string[]): Run {
  return openssl('verify', '-no-CApath', '-no-CAstore', '-x509_strict', '-CAfile', caFile, ...extra, certFile);
}

/** The complete TBSCertificate encoding of a PEM certificate. */
export function tbsOf(pem: string): Buffer {
  const der = pemToDer(pem);
  const cert = readTlv(der, 0);
  const tbs = children(der, cert)[0]!;
  return der.subarray(cert.start, tbs.end);
}

/** A device key pair of the given kind, with its SPKI DER. */
export function deviceKey(kind: 'P-256' | 'P-384' | 'RSA-2048' | 'RSA-1024' | 'Ed25519'): { key: KeyObject; spki: Buffer } {
  const pair = kind === 'P-256' ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
    : kind === 'P-384' ? generateKeyPairSync('ec', { namedCurve: 'secp384r1' })
    : kind === 'Ed25519' ? generateKeyPairSync('ed25519')
    : generateKeyPairSync('rsa', { modulusLength: kind === 'RSA-1024' ? 1024 : 2048 });
  return { key: pair.privateKey, spki: pair.publicKey.export({ type: 'spki', format: 'der' }) };
}

/** Concatenate PEM blocks into one bundle file's contents. */
export function bundle(...pems: string[]): string {
  return pems.map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join('');
}
