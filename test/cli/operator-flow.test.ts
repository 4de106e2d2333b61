import { strict as assert } from 'node:assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { Mosquitto, freePort } from '../../demo/mosquitto.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';

const MANAGER = fileURLToPath(new URL('../../bin/trustroll.mjs', import.meta.url));
const AGENT = fileURLToPath(new URL('../../bin/trustroll-agent.mjs', import.meta.url));
const run = (bin: string, ...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });

/** Start `trustroll-agent run` and resolve once it reports it is linked. */
function startAgent(config: string): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [AGENT, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${config}: not ready in 60 s`)), 60_000);
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      if (line.includes('"event":"ready"')) {
        clearTimeout(timer);
        if (line.includes('"linked":true')) resolve(proc);
        else reject(new Error(`${config}: not linked`));
      }
    });
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${config}: exited ${code}`)); });
  });
}

describe('operator flow with the CLIs only: a fleet of agent processes rotated by "trustroll rotate"', function () {
  this.timeout(180_000);
  let dir: string;
  let broker: Mosquitto | null = null;
  const procs: ChildProcess[] = [];
  before(() => { dir = mkdtempSync(join(tmpdir(), 'trustroll-ops-')); });
  after(async () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => (p.exitCode === null ? new Promise((r) => p.once('exit', r)) : undefined)));
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('mgmt init, ca init, init/enroll/provision/mgmt device per device, run, rotate, status', async () => {
    const data = join(dir, 'manager');
    const mgmtDir = join(dir, 'mgmt');
    assert.equal(run(MANAGER, 'mgmt', 'init', '--dir', mgmtDir).status, 0);
    const rootOut = run(MANAGER, 'ca', 'init', '--data', data, '--subject', 'CN=Ops Fleet Root,O=Example');
    assert.equal(rootOut.status, 0, rootOut.stderr);
    writeFileSync(join(dir, 'root.pem'), rootOut.stdout);
    broker = await Mosquitto.start(ManagementPki.load(mgmtDir, new Date()));
    const printerPort = await freePort();
    const devices: [string, 'server' | 'client'][] = [['printer-1', 'server'], ['console-1', 'client'], ['console-2', 'client']];
    for (const [id, role] of devices) {
      const d = join(dir, id);
      const link = JSON.parse(run(MANAGER, 'mgmt', 'device', '--dir', mgmtDir, '--id', id, '--out', join(d, 'link'), '--broker', broker.url).stdout).link;
      const config = {
        deviceId: id, role,
        hal: { keys: { backend: 'file', dir: join(d, 'keys') }, records: { backend: 'file', dir: join(d, 'records') } },
        store: { kind: 'sqlite', path: join(d, 'trust.db') },
        link,
        ...(role === 'server' ? { tls: { host: '127.0.0.1', port: printerPort } } : { probe: { targets: [{ host: '127.0.0.1', port: printerPort, serverId: 'printer-1' }], intervalMs: 50 } }),
      };
      writeFileSync(join(d, 'agent.json'), JSON.stringify(config));
      writeFileSync(join(d, 'req.pem'), run(AGENT, 'init', '--config', join(d, 'agent.json')).stdout);
      const cert = run(MANAGER, 'enroll', '--data', data, '--id', id, '--role', role, '--csr', join(d, 'req.pem'));
      assert.equal(cert.status, 0, cert.stderr);
      writeFileSync(join(d, 'cert.pem'), cert.stdout);
      const prov = run(AGENT, 'provision', '--config', join(d, 'agent.json'), '--root', join(dir, 'root.pem'), '--cert', join(d, 'cert.pem'));
      assert.equal(prov.status, 0, prov.stderr);
    }
    for (const [id] of devices) procs.push(await startAgent(join(dir, id, 'agent.json')));
    const rot = run(MANAGER, 'rotate', '--data', data, '--mgmt', mgmtDir, '--broker', broker.url, '--schedule', 'six-step', '--json');
    assert.equal(rot.status, 0, rot.stderr + rot.stdout);
    const st = JSON.parse(rot.stdout);
    assert.equal(st.rotation.status, 'complete');
    assert.equal(st.acked, st.total);
    const status = run(MANAGER, 'status', '--data', data);
    assert.match(status.stdout, /complete, 9\/9 steps acknowledged/);
    // The devices now trust only the new root, and the CA signs with it.
    const newRoot = run(MANAGER, 'ca', 'root', '--data', data).stdout;
    assert.notEqual(newRoot, readFileSync(join(dir, 'root.pem'), 'utf8'));
    for (const [id] of devices) {
      const s = JSON.parse(run(AGENT, 'status', '--store', join(dir, id, 'trust.db'), '--json').stdout);
      assert.equal(s.trust.length, 1, `${id} holds one root`);
      assert.deepEqual(s.rotation.remaining, []);
    }
    // The clients kept talking to the printer the whole time.
    for (const p of procs) p.kill('SIGTERM');
    const tallies = await Promise.all(procs.map((p) => new Promise<string>((resolve) => {
      let last = '';
      createInterface({ input: p.stdout! }).on('line', (l) => { if (l.includes('"event":"stopped"')) last = l; });
      p.once('exit', () => resolve(last));
    })));
    const probes = tallies.filter((t) => t).map((t) => JSON.parse(t).probe).filter((p) => p.attempted > 0);
    assert.equal(probes.length, 2, 'both clients report');
    for (const p of probes) assert.equal(p.failed, 0, JSON.stringify(p.failures));
  });
});
