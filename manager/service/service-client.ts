/**
 * The `trustroll` CLI's way into a running `trustroll serve` on the same
 * data folder: HTTPS to the URL in service.json with its local token,
 * verifying the service's certificate under the operator CA. Used so that
 * `rotate` never opens a second MQTT session under the manager's identity.
 */
import { request } from 'node:https';
import { userInfo } from 'node:os';
import { ManagerError } from '../errors.ts';
import type { ApiError } from '../http/api-types.ts';
import { ACTOR_HEADER } from '../http/auth.ts';
import type { ServiceInfo } from './run-service.ts';

/** Call the service; resolves with the parsed body, rejects with the API's error code and message. */
export function callService<T>(info: ServiceInfo, operatorCa: string, method: 'GET' | 'POST', path: string, body?: object): Promise<T> {
  const url = new URL(path, info.url);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise<T>((resolve, reject) => {
    const req = request(url, {
      method, ca: operatorCa, timeout: 30_000,
      headers: { authorization: `Bearer ${info.token}`, [ACTOR_HEADER]: safeUser(), ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          return reject(new ManagerError('E_SERVICE_CONFIG', `${info.url}${path}: answered ${res.statusCode} with no JSON`));
        }
        if ((res.statusCode ?? 500) >= 400) {
          const e = (parsed as ApiError).error;
          return reject(Object.assign(new Error(e?.message ?? `HTTP ${res.statusCode}`), { code: e?.code ?? 'E_SERVICE_CONFIG' }));
        }
        resolve(parsed as T);
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', (err) => reject(new ManagerError('E_SERVICE_CONFIG', `the running service at ${info.url} did not answer: ${err.message}`)));
    req.end(payload);
  });
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'local';
  }
}
