/**
 * The signature floor a rotation cannot beat: raw P-256 sign and verify
 * rates through node:crypto and, for reference, `openssl speed`, measured
 * in the same run as the benchmark that compares against them.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { opsPerSecond, round } from './stats.ts';

/** Sign/verify rates per second. */
export interface CryptoFloor {
  nodeP256SignPerSec: number;
  nodeP256VerifyPerSec: number;
  opensslSpeedP256: { signPerSec: number; verifyPerSec: number } | null;
}

/** Measure the floor (about 2 s with openssl). */
export function measureCryptoFloor(): CryptoFloor {
  return { ...measureNodeP256(), opensslSpeedP256: opensslSpeed() };
}

/** node:crypto P-256 sign and verify rates over about `ms` each (this machine's speed right now). */
export function measureNodeP256(ms = 500): { nodeP256SignPerSec: number; nodeP256VerifyPerSec: number } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const tbs = randomBytes(400);
  const sig = sign('sha256', tbs, privateKey);
  return {
    nodeP256SignPerSec: round(opsPerSecond(() => sign('sha256', tbs, privateKey), ms), 0),
    nodeP256VerifyPerSec: round(opsPerSecond(() => verify('sha256', tbs, publicKey, sig), ms), 0),
  };
}

function opensslSpeed(): CryptoFloor['opensslSpeedP256'] {
  try {
    const out = execFileSync('openssl', ['speed', '-seconds', '1', 'ecdsap256'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    // " 256 bits ecdsa (nistp256)   0.0000s   0.0001s  40000.0  13000.0"
    const m = /nistp256\)\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)\s+([\d.]+)/.exec(out);
    return m ? { signPerSec: Number(m[1]), verifyPerSec: Number(m[2]) } : null;
  } catch {
    return null;
  }
}
