/**
 * Device certificate issuance: the fast synchronous LeafIssuer (leaf-fast.ts),
 * the @peculiar/x509 reference path it is tested against, and batch
 * issuance over worker threads.
 *
 * Why the fast path exists (profiled with --cpu-prof, P-256, Node 20): the
 * library path spends 1.9 ms per leaf on an idle host (3.5 ms loaded), of
 * which WebCrypto signing is ~0.1 ms. Per leaf: SKI via PublicKey.create +
 * subtle.digest 0.37 ms, building the extension objects 0.29 ms (each is
 * serialized and parsed back), generator.create 1.2 ms (SPKI, Names and
 * every extension parsed and re-serialized, TBS serialized, the finished
 * certificate parsed again 0.13 ms). In samples: ~35% asn1js/asn1-schema
 * object model, ~6% GC, ~18% idle waiting on the libuv pool for async
 * digest/sign. A direct DER build with one synchronous crypto.sign removes
 * all of that: ~30 µs per leaf, of which ~19 µs is crypto.sign.
 *
 * Leaf profile: v3; basicConstraints critical CA:false; keyUsage critical
 * digitalSignature (+ keyEncipherment for RSA device keys); extKeyUsage
 * serverAuth or clientAuth; SKI (method 1); AKI keyid = issuer SKI;
 * subjectAltName from the request (server leaves default to DNS = CN).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { availableParallelism } from 'node:os';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { assertIssuer, readCaCertificate } from './cert-info.ts';
import { withoutCode } from '../../protocol/errors.ts';
import { CA_ERRORS, CaError, type CaErrorCode } from './errors.ts';
import { randomSerial } from './fields.ts';
import { algorithmOf, inspectSubjectKey, toCryptoKey, webCryptoSigningAlgorithm } from './keys.ts';
import { isDnsName, LeafIssuer, type LeafRequest } from './leaf-fast.ts';
import type { ChunkMessage, WorkerReply } from './leaf-worker.ts';
import { derToPem } from './pem.ts';
import type { RootMaterial } from './root.ts';

export { LeafIssuer, type LeafRequest } from './leaf-fast.ts';

/**
 * Build the same certificate as LeafIssuer with @peculiar/x509 (the
 * reference path; ~100x slower). With the same serial and validity the
 * TBSCertificate is byte-identical to the fast path's.
 */
export async function issueLeafWithLibrary(issuer: RootMaterial, req: LeafRequest): Promise<string> {
  const info = readCaCertificate(issuer.cert);
  assertIssuer(info, issuer.key);
  const caCert = new x509.X509Certificate(info.der);
  const issuerKeyId = caCert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId ?? Buffer.from(await caCert.publicKey.getKeyIdentifier()).toString('hex');
  const subjectKey = inspectSubjectKey(req.publicKey);
  const serial = req.serial ?? randomSerial();
  if (!serial.some((b) => b !== 0)) throw new CaError('E_LEAF_REQUEST', `leaf "${req.commonName}": serial must not be zero (RFC 5280 §4.1.2.2)`);
  const names: x509.JsonGeneralName[] = [
    ...(req.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(req.uris ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(req.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  if (names.length === 0 && req.profile === 'server') {
    if (!isDnsName(req.commonName)) throw new CaError('E_LEAF_REQUEST', `leaf "${req.commonName}": a server certificate needs a subjectAltName`);
    names.push({ type: 'dns', value: req.commonName });
  }
  const usage = x509.KeyUsageFlags.digitalSignature | (subjectKey.type === 'rsa' ? x509.KeyUsageFlags.keyEncipherment : 0);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(usage, true),
    new x509.ExtendedKeyUsageExtension([req.profile === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
    await x509.SubjectKeyIdentifierExtension.create(req.publicKey),
    new x509.AuthorityKeyIdentifierExtension(issuerKeyId),
  ];
  if (names.length) extensions.push(new x509.SubjectAlternativeNameExtension(names));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: Buffer.from(serial).toString('hex'),
    subject: new x509.Name([{ CN: [req.commonName] }]),
    issuer: caCert.subjectName,
    notBefore: req.notBefore,
    notAfter: req.notAfter,
    publicKey: req.publicKey,
    signingKey: await toCryptoKey(issuer.key),
    signingAlgorithm: webCryptoSigningAlgorithm(algorithmOf(issuer.key)),
    extensions,
  });
  return derToPem(Buffer.from(cert.rawData));
}

/** How a batch was split, for benchmarks and tests. */
export interface BatchStats {
  /** Leaves issued by the calling thread. */
  readonly callingThread: number;
  /** Leaves issued by each worker thread. */
  readonly workers: readonly number[];
}

/** Options of issueLeaves. */
export interface IssueLeavesOptions {
  /** Threads doing the work (the calling one included unless useCallingThread is false); default: available parallelism. */
  readonly workers?: number;
  /** Smallest batch spread over threads; default PARALLEL_MIN_LEAVES. */
  readonly minParallelBatch?: number;
  /** Let the calling thread sign too (default true); false keeps its event loop free and leaves all signing to workers. */
  readonly useCallingThread?: boolean;
  /** Called once with the split of the batch. */
  readonly onStats?: (stats: BatchStats) => void;
}

/**
 * Below this batch size one thread is faster. Starting a worker under tsx
 * costs 0.12–0.19 s (loader and module graph) and its first leaves run
 * unoptimized. Measured with bench/issuance.ts on a 2-core host shared with
 * other work (load average 1.2–1.9): two threads vs one gave 0.9x at 10k
 * leaves, 1.1x at 20k, 1.3x at 40k and 80k.
 */
export const PARALLEL_MIN_LEAVES = 20_000;

/** Chunk sizes: a share of what is left (guided self-scheduling), so all threads finish together. */
const MIN_CHUNK = 64;
const MAX_CHUNK = 512;
/** Chunks queued per worker, so a worker never idles while the calling thread is busy signing. */
const IN_FLIGHT = 2;

/**
 * Issue a batch, results in request order. Large batches are spread over
 * worker threads (the calling thread works too, unless told otherwise);
 * small ones run inline. The first failing request rejects the whole batch
 * with its CaError; a worker that cannot start or dies rejects it with
 * E_CA_WORKER.
 */
export async function issueLeaves(issuer: RootMaterial, reqs: readonly LeafRequest[], options: IssueLeavesOptions = {}): Promise<string[]> {
  const local = new LeafIssuer(issuer);
  const threads = Math.max(1, Math.floor(options.workers ?? availableParallelism()));
  const useCallingThread = options.useCallingThread ?? true;
  if (reqs.length === 0 || (useCallingThread && threads === 1) || reqs.length < (options.minParallelBatch ?? PARALLEL_MIN_LEAVES)) {
    const pems = reqs.map((r) => local.issue(r));
    options.onStats?.({ callingThread: pems.length, workers: [] });
    return pems;
  }
  return issueParallel(issuer, useCallingThread ? local : null, reqs, useCallingThread ? threads - 1 : threads, options.onStats);
}

/** The worker entry: registers tsx, then loads leaf-worker.ts (see leaf-worker-boot.mjs). */
const WORKER_ENTRY = new URL('./leaf-worker-boot.mjs', import.meta.url);

function toCaError(code: string, message: string): CaError {
  const known = (code in CA_ERRORS ? code : 'E_CA_WORKER') as CaErrorCode;
  return new CaError(known, withoutCode(message));
}

async function issueParallel(issuer: RootMaterial, local: LeafIssuer | null, reqs: readonly LeafRequest[], workerCount: number, onStats?: (stats: BatchStats) => void): Promise<string[]> {
  const results = new Array<string>(reqs.length);
  const threads = workerCount + (local ? 1 : 0);
  const byWorker = new Array<number>(workerCount).fill(0);
  let byCaller = 0;
  let next = 0;
  let done = 0;
  let failure: CaError | null = null;
  let settle!: () => void;
  const finished = new Promise<void>((resolve) => { settle = resolve; });
  const check = (): void => { if (failure || done === reqs.length) settle(); };
  const take = (): ChunkMessage | null => {
    if (failure || next >= reqs.length) return null;
    const size = Math.min(MAX_CHUNK, Math.max(MIN_CHUNK, Math.ceil((reqs.length - next) / (threads * 4))));
    const start = next;
    next = Math.min(reqs.length, next + size);
    return { start, reqs: reqs.slice(start, next) };
  };
  const fail = (err: CaError): void => { failure ??= err; check(); };

  const workers = byWorker.map((_, index) => {
    const w = new Worker(WORKER_ENTRY, { workerData: { cert: issuer.cert, key: issuer.key } });
    let inFlight = 0;
    const feed = (): void => {
      for (let chunk = inFlight < IN_FLIGHT ? take() : null; chunk; chunk = inFlight < IN_FLIGHT ? take() : null) {
        inFlight++;
        w.postMessage(chunk);
      }
    };
    w.on('message', (m: WorkerReply) => {
      if (m.type === 'error') return fail(toCaError(m.code, m.message));
      if (m.type === 'done') {
        inFlight--;
        for (let i = 0; i < m.pems.length; i++) results[m.start + i] = m.pems[i]!;
        byWorker[index]! += m.pems.length;
        done += m.pems.length;
        check();
      }
      feed();
    });
    w.on('error', (err) => fail(new CaError('E_CA_WORKER', `issuance worker failed: ${err.message}`, { cause: err })));
    w.on('exit', (code) => { if (done < reqs.length) fail(new CaError('E_CA_WORKER', `issuance worker exited (code ${code}) before the batch was done`)); });
    return w;
  });

  try {
    for (let chunk = local ? take() : null; chunk && local; chunk = take()) {
      try {
        const pems = chunk.reqs.map((r) => local.issue(r));
        for (let i = 0; i < pems.length; i++) results[chunk.start + i] = pems[i]!;
        byCaller += pems.length;
        done += pems.length;
      } catch (err) {
        fail(err instanceof CaError ? err : new CaError('E_CA_WORKER', (err as Error).message, { cause: err }));
      }
      check();
      await yieldToLoop();
    }
    await finished;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  if (failure) throw failure;
  onStats?.({ callingThread: byCaller, workers: byWorker });
  return results;
}
