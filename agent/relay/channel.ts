/**
 * One side's end of a relay exchange on an authenticated socket: send a
 * request line, wait for its answer line (tls/material.ts greeting first,
 * then relay/wire.ts lines). Answers arrive in request order; a line that
 * is not a relay answer, a line too long, a time-out or a closed socket
 * fails the pending request with E_AGENT_RELAY and closes the socket.
 */
import type tls from 'node:tls';
import { AgentError } from '../errors.ts';
import { LineSplitter } from '../tls/material.ts';
import { MAX_RELAY_LINE, parseRelayReply, RELAY_PREFIX, relayLine, type RelayReply, type RelayRequest } from './wire.ts';

/** A request/answer channel over one relay connection. */
export class RelayChannel {
  private readonly lines = new LineSplitter(MAX_RELAY_LINE);
  private readonly waiting: { resolve: (r: RelayReply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }[] = [];
  private failure: Error | null = null;

  constructor(private readonly socket: tls.TLSSocket, private readonly peer: string) {
    socket.on('data', (chunk: Buffer) => {
      const got = this.lines.push(chunk);
      if (got === null) return this.fail(`${peer} sent a line longer than ${MAX_RELAY_LINE} bytes`);
      for (const line of got) {
        const reply = line.startsWith(RELAY_PREFIX) ? parseRelayReply(line.slice(RELAY_PREFIX.length)) : null;
        if (!reply) return this.fail(`${peer} answered something that is not a relay answer`);
        const w = this.waiting.shift();
        if (!w) return this.fail(`${peer} answered a request that was not made`);
        clearTimeout(w.timer);
        w.resolve(reply);
      }
    });
    socket.on('close', () => this.fail(`${peer} closed the connection`));
    socket.on('error', (err) => this.fail(`${peer}: ${err.message}`));
    socket.resume();
  }

  /** Send one request and wait for its answer. */
  request(msg: RelayRequest, timeoutMs: number): Promise<RelayReply> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<RelayReply>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(`${this.peer} did not answer a ${msg.t} within ${timeoutMs} ms`), timeoutMs);
      this.waiting.push({ resolve, reject, timer });
      this.socket.write(relayLine(msg));
    });
  }

  private fail(reason: string): void {
    if (!this.failure) this.failure = new AgentError('E_AGENT_RELAY', reason);
    for (const w of this.waiting.splice(0)) {
      clearTimeout(w.timer);
      w.reject(this.failure);
    }
    this.socket.destroy();
  }

  /** Close the connection (pending requests fail). */
  close(): void {
    this.fail(`connection to ${this.peer} closed by this device`);
  }
}
