/**
 * Leaf issuance benchmark: the @peculiar/x509 reference path, the fast
 * LeafIssuer on one thread, issueLeaves over worker threads, and the
 * signature floor (crypto.sign of a TBS-sized buffer with the same key, and
 * `openssl speed ecdsap256` when available), all measured in one run.
 * `npx tsx bench/issuance.ts [leaves]` prints one JSON object.
 */
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { availableParallelism, loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { issueLeafWithLibrary, issueLeaves, LeafIssuer, PARALLEL_MIN_LEAVES, type BatchStats, type LeafRequest } from '../manager/ca/leaf-issuer.ts';
import { createRoot } from '../manager/ca/root.ts';

/** Leaves the slow reference path issues at most (it runs at ~500/s). */
const LIBRARY_CAP = 500;

const rate = (count: number, ms: number): number => Math.round((count * 1000) / ms);

/** `openssl speed -seconds 1 ecdsap256` sign/s, or null when openssl is missing or its output is unexpected. */
function opensslEcdsaSignRate(): number | null {
  const r = spawnSync('openssl', ['speed', '-seconds', '1', 'ecdsap256'], { encoding: 'utf8', timeout: 30_000 });
  const line = r.status === 0 ? r.stdout.split('\n').find((l) => /256 bits? ecdsa \(nistp256\)/.test(l)) : undefined;
  const cols = line?.trim().split(/\s+/);
  const signs = cols ? Number(cols[cols.length - 2]) : Number.NaN;
  return Number.isFinite(signs) ? Math.round(signs) : null;
}

/** Run the benchmark over `leaves` P-256 leaves from a P-256 root; returns JSON-ready numbers. */
export async function benchIssuance(opts: { leaves: number }): Promise<object> {
  const leaves = Math.max(1, Math.floor(opts.leaves));
  const load = loadavg()[0]!;
  const now = new Date();
  const root = await createRoot({ subject: 'CN=Bench Root,O=trustroll', algorithm: 'P-256', notBefore: now, notAfter: new Date(now.getTime() + 3650 * 86_400_000) });
  const spkis = Array.from({ length: 64 }, () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' }));
  const reqs: LeafRequest[] = Array.from({ length: leaves }, (_, i) => ({
    commonName: `printer-${i}.fleet.example`,
    publicKey: spkis[i % spkis.length]!,
    profile: i % 2 ? 'server' : 'client',
    notBefore: now,
    notAfter: new Date(now.getTime() + 730 * 86_400_000),
  }));

  const libraryCount = Math.min(leaves, LIBRARY_CAP);
  for (let i = 0; i < 20; i++) await issueLeafWithLibrary(root, reqs[i % leaves]!);
  let t = performance.now();
  for (let i = 0; i < libraryCount; i++) await issueLeafWithLibrary(root, reqs[i]!);
  const libraryMs = performance.now() - t;

  const issuer = new LeafIssuer(root);
  for (let i = 0; i < 500; i++) issuer.issue(reqs[i % leaves]!);
  t = performance.now();
  for (const r of reqs) issuer.tbs(r);
  const tbsMs = performance.now() - t;
  t = performance.now();
  for (const r of reqs) issuer.issue(r);
  const fastMs = performance.now() - t;

  let stats: BatchStats = { callingThread: 0, workers: [] };
  t = performance.now();
  await issueLeaves(root, reqs, { minParallelBatch: 1, onStats: (s) => { stats = s; } });
  const parallelMs = performance.now() - t;

  const tbs = issuer.tbs(reqs[0]!);
  for (let i = 0; i < 500; i++) sign('sha256', tbs, root.key);
  t = performance.now();
  for (let i = 0; i < leaves; i++) sign('sha256', tbs, root.key);
  const signMs = performance.now() - t;

  return {
    algorithm: 'P-256 root, P-256 device keys',
    leaves,
    node: process.version,
    openssl: process.versions.openssl,
    cpus: availableParallelism(),
    loadAverage1m: Math.round(load * 100) / 100,
    libraryPath: { leaves: libraryCount, leavesPerSec: rate(libraryCount, libraryMs), msPerLeaf: Math.round((libraryMs / libraryCount) * 1000) / 1000 },
    fastPath: { leavesPerSec: rate(leaves, fastMs), usPerLeaf: Math.round((fastMs / leaves) * 10000) / 10, tbsOnlyUsPerLeaf: Math.round((tbsMs / leaves) * 10000) / 10 },
    parallel: { threads: stats.workers.length + 1, leavesPerSec: rate(leaves, parallelMs), split: stats, defaultMinBatch: PARALLEL_MIN_LEAVES },
    signatureFloor: { tbsBytes: tbs.length, cryptoSignPerSec: rate(leaves, signMs), opensslSpeedSignPerSec: opensslEcdsaSignRate() },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const leaves = Number(process.argv[2] ?? 20_000);
  process.stdout.write(`${JSON.stringify(await benchIssuance({ leaves }), null, 2)}\n`);
}
