/**
 * Worker thread body for issueLeaves: holds one LeafIssuer and answers
 * chunks of requests with PEMs (or the first CaError) in request order.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { KeyObject } from 'node:crypto';
import { isCaError } from './errors.ts';
import { LeafIssuer, type LeafRequest } from './leaf-fast.ts';

/** Parent → worker: issue `reqs`, which start at index `start` of the batch. */
export interface ChunkMessage {
  readonly start: number;
  readonly reqs: readonly LeafRequest[];
}

/** Worker → parent. */
export type WorkerReply =
  | { readonly type: 'ready' }
  | { readonly type: 'done'; readonly start: number; readonly pems: string[] }
  | { readonly type: 'error'; readonly code: string; readonly message: string };

const port = parentPort;
if (port) {
  const data = workerData as { cert: string; key: KeyObject };
  const reply = (m: WorkerReply): void => port.postMessage(m);
  try {
    const issuer = new LeafIssuer({ cert: data.cert, key: data.key });
    port.on('message', (chunk: ChunkMessage) => {
      try {
        reply({ type: 'done', start: chunk.start, pems: chunk.reqs.map((r) => issuer.issue(r)) });
      } catch (err) {
        reply({ type: 'error', code: isCaError(err) ? err.code : 'E_CA_WORKER', message: (err as Error).message });
      }
    });
    reply({ type: 'ready' });
  } catch (err) {
    reply({ type: 'error', code: isCaError(err) ? err.code : 'E_CA_WORKER', message: (err as Error).message });
  }
}
