/**
 * The parent's side of demo/agent-host.ts: starts child processes that host
 * simulated devices, so a large fleet's devices do their own work (TLS,
 * command and certificate verification, signing acknowledgements) outside
 * the manager's process, on the other core, as real devices do on theirs.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { HistoryEntry } from '../agent/state-store.ts';
import type { Role } from '../protocol/steps.ts';
import type { HostedDevice, HostReply, HostRequest } from './agent-host.ts';

/** Request without its id (the caller's view). */
type Request = HostRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

const HOST_SCRIPT = fileURLToPath(new URL('./agent-host.ts', import.meta.url));

/** One child process hosting some of the fleet's devices. */
export class AgentHost {
  private next = 1;
  private readonly calls = new Map<number, { resolve: (r: HostReply) => void; reject: (e: Error) => void }>();
  private exited: Error | null = null;

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (reply: HostReply) => {
      const call = this.calls.get(reply.id);
      if (!call) return;
      this.calls.delete(reply.id);
      if (reply.error) call.reject(new Error(`agent host ${child.pid}: ${reply.error}`));
      else call.resolve(reply);
    });
    child.once('exit', (code, signal) => {
      this.exited = new Error(`agent host ${child.pid} exited (${signal ?? code})`);
      for (const c of this.calls.values()) c.reject(this.exited);
      this.calls.clear();
    });
  }

  /** Fork a host (it runs TypeScript through the same loader as this process). */
  static start(): AgentHost {
    return new AgentHost(fork(HOST_SCRIPT, [], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' }));
  }

  /** The host's process id (benchmarks read its CPU time from /proc). */
  get pid(): number | null {
    return this.child.pid ?? null;
  }

  /** Send one request and wait for its reply. */
  private call(req: Request): Promise<HostReply> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      this.child.send({ ...req, id } as HostRequest);
    });
  }

  /** Tell the host where the broker is, which management CA and command keys its devices trust. */
  async init(settings: Omit<Extract<HostRequest, { op: 'init' }>, 'id' | 'op'>): Promise<void> {
    await this.call({ op: 'init', ...settings });
  }

  /** Make the devices' keys inside the host; returns each device's SPKI (DER). */
  async makeKeys(devices: [deviceId: string, role: Role][]): Promise<Map<string, Buffer>> {
    const reply = await this.call({ op: 'keys', devices });
    return new Map((reply.spkis ?? []).map(([id, b64]) => [id, Buffer.from(b64, 'base64')]));
  }

  /** Provision devices with their factory material. */
  async provision(devices: HostedDevice[]): Promise<void> {
    await this.call({ op: 'provision', devices });
  }

  /** Connect every provisioned device's link; resolves once all are subscribed. */
  async connectAll(): Promise<void> {
    await this.call({ op: 'connect' });
  }

  /** Start a CPU profile of the host (`file`), or write the running one (null). */
  async profile(file: string | null): Promise<void> {
    await this.call({ op: 'profile', file });
  }

  /** The steps a hosted device has applied, oldest first. */
  async history(deviceId: string): Promise<HistoryEntry[]> {
    return (await this.call({ op: 'history', deviceId })).history ?? [];
  }

  /** Close every device link (graceful) and let the host exit. */
  async close(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
    await this.call({ op: 'close' }).catch(() => undefined);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(timer);
  }
}
