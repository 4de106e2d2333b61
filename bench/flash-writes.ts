/**
 * Flash wear of a running agent, for bench/footprint.ts: the bytes a
 * process has the kernel write to block storage (`write_bytes` of
 * /proc/<pid>/io: page-granular, counted when a page of a file on a disk
 * is dirtied; nothing for tmpfs such as /run, nor for sockets), and the
 * writes under the device's persistent state folder seen by inotify
 * (fs.watch, recursive): how many, and to which files. Both over a window,
 * scaled to one hour. The agent's runtime folder (health file) is on tmpfs
 * as on the device (/run/trustroll), outside the state folder.
 */
import { spawn } from 'node:child_process';
import { readFileSync, watch } from 'node:fs';
import { createInterface } from 'node:readline';
import type { CommandLine } from '../image/emulate.ts';

/** Bytes written to block storage by `pid` so far (write_bytes of /proc/<pid>/io), or null when unreadable. */
export function writeBytes(pid: number): number | null {
  try {
    const m = /^write_bytes: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Writes seen under a folder while watched. */
export interface FolderWrites {
  events: number;
  files: string[];
}

/** Count inotify events under `dir` (recursive) until `stop()`. */
export function watchFolder(dir: string): { stop(): FolderWrites } {
  const files = new Set<string>();
  let events = 0;
  const w = watch(dir, { recursive: true }, (_type, name) => {
    events++;
    if (name) files.add(String(name));
  });
  return { stop: () => { w.close(); return { events, files: [...files].sort() }; } };
}

/** One process's writes over a window, scaled to an hour. */
export interface FlashWindow {
  windowS: number;
  /** write_bytes over the window (null: /proc/<pid>/io not readable). */
  blockBytes: number | null;
  blockBytesPerHour: number | null;
  /** Writes under the persistent state folder (inotify), when one was watched. */
  stateFolder?: FolderWrites & { eventsPerHour: number };
}

/** Start measuring `pid` (and the state folder `dir`, if given); `end()` returns the window. */
export function flashWindow(pid: number, dir?: string): { end(): FlashWindow } {
  const t0 = Date.now();
  const b0 = writeBytes(pid);
  const watcher = dir ? watchFolder(dir) : null;
  return {
    end: () => {
      const ms = Date.now() - t0;
      const b1 = writeBytes(pid);
      const perHour = (n: number) => Math.round((n * 3_600_000) / ms);
      const blockBytes = b0 === null || b1 === null ? null : b1 - b0;
      const folder = watcher?.stop();
      return {
        windowS: Math.round(ms / 100) / 10, blockBytes, blockBytesPerHour: blockBytes === null ? null : perHour(blockBytes),
        ...(folder ? { stateFolder: { ...folder, eventsPerHour: perHour(folder.events) } } : {}),
      };
    },
  };
}

/** A started agent process: its pid, the last probe tally it printed, and how to stop it. */
interface Started { pid: number; tally: () => { attempted: number; failed: number } | null; stop(): Promise<void> }

/** Start `trustroll-agent run` and wait for its ready line. */
async function startAgent(cl: CommandLine, env: NodeJS.ProcessEnv): Promise<Started> {
  const p = spawn(cl.command, cl.args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let err = '';
  let tally: { attempted: number; failed: number } | null = null;
  p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const stop = async () => {
    if (p.exitCode !== null) return;
    p.kill('SIGTERM');
    await new Promise((r) => { p.once('exit', r); setTimeout(r, 20_000).unref(); });
    if (p.exitCode === null) p.kill('SIGKILL');
  };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready within 120 s: ${err}`)), 120_000);
    p.once('exit', (c) => reject(new Error(`exited with ${c}: ${err}`)));
    createInterface({ input: p.stdout }).on('line', (l) => {
      if (l.includes('"event":"ready"') && l.includes('"linked":true')) { clearTimeout(timer); resolve(); }
      if (l.includes('"event":"tally"')) tally = (JSON.parse(l) as { probe: { attempted: number; failed: number } }).probe;
    });
  });
  return { pid: p.pid!, tally: () => tally, stop };
}

/**
 * A server-role agent under handshake traffic: its client-role peer
 * handshakes with it in a loop. After `warmMs`, both processes' writes are
 * measured for `windowMs`, with each one's state folder watched.
 */
export async function underHandshakes(o: { server: CommandLine; client: CommandLine; serverState: string; clientState: string; env: NodeJS.ProcessEnv; warmMs: number; windowMs: number }): Promise<{ handshakesPerHour: number; failed: number; server: FlashWindow; client: FlashWindow }> {
  const server = await startAgent(o.server, o.env);
  try {
    const client = await startAgent(o.client, o.env);
    try {
      await new Promise((r) => setTimeout(r, o.warmMs));
      const before = client.tally()?.attempted ?? 0;
      const s = flashWindow(server.pid, o.serverState);
      const c = flashWindow(client.pid, o.clientState);
      await new Promise((r) => setTimeout(r, o.windowMs));
      const sw = s.end();
      const cw = c.end();
      const t = client.tally();
      return { handshakesPerHour: Math.round((((t?.attempted ?? 0) - before) * 3_600_000) / o.windowMs), failed: t?.failed ?? 0, server: sw, client: cw };
    } finally {
      await client.stop();
    }
  } finally {
    await server.stop();
  }
}
