/**
 * `trustroll-agent run` as a systemd service (issue 20, item 8), against
 * real processes: a UNIX datagram receiver (python3) bound at a temporary
 * NOTIFY_SOCKET, the real `systemd-notify` helper, Mosquitto behind a gate
 * that holds the agent's connections until it opens. READY=1 arrives only
 * once the link is up, WATCHDOG=1 every WATCHDOG_USEC/2 and none while the
 * agent is stopped (SIGSTOP); exit codes by cause; the log level from
 * agent.json, --log-level and $TRUSTROLL_LOG; syslog priority prefixes when
 * stderr is the journal ($JOURNAL_STREAM); SIGHUP logs and keeps running.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentNodeFlags, bundleAgent } from '../../cross-compile/bundle.ts';
import { CACHE_DIR } from '../../cross-compile/paths.ts';
import { HOST_NODE24 } from '../../cross-compile/targets.ts';
import { provisionDevice, serverPorts } from '../../demo/device-provisioning.ts';
import { Mosquitto } from '../../demo/mosquitto.ts';
import { CaAuthority } from '../../manager/pki/ca-authority.ts';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { ManagementPki } from '../../manager/pki/management-pki.ts';
import { createLogger } from '../../protocol/log.ts';

const AGENT_BIN = fileURLToPath(new URL('../../bin/trustroll-agent.mjs', import.meta.url));
const RECEIVER = `import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    d = s.recv(4096)
    print("%.3f %s" % (time.time(), d.decode().replace("\\n", " ")), flush=True)
`;

/** A running agent: its output lines as they come, and how it ended. */
interface Agent { proc: ChildProcess; out: string[]; err: string[]; exited: Promise<number | null> }

function startAgent(args: string[], env: NodeJS.ProcessEnv, stderrFd?: number, command: string[] = [process.execPath, AGENT_BIN]): Agent {
  const proc = spawn(command[0]!, [...command.slice(1), 'run', ...args], { stdio: ['ignore', 'pipe', stderrFd ?? 'pipe'], env: { ...process.env, TRUSTROLL_LOG: 'warn', ...env } });
  const a: Agent = { proc, out: [], err: [], exited: new Promise((r) => proc.once('exit', (code) => r(code))) };
  proc.stdout!.on('data', (d: Buffer) => a.out.push(...d.toString().split('\n').filter(Boolean)));
  proc.stderr?.on('data', (d: Buffer) => a.err.push(...d.toString().split('\n').filter(Boolean)));
  return a;
}

async function until(ok: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function stopAgent(a: Agent): Promise<number | null> {
  if (a.proc.exitCode === null && a.proc.signalCode === null) a.proc.kill('SIGTERM');
  return a.exited;
}

describe('trustroll-agent run under systemd: notify, watchdog, exit codes, log levels', function () {
  this.timeout(120_000);
  let dir: string;
  let pki: ManagementPki;
  let mosquitto: Mosquitto;
  let gate: Server;
  let open = false;
  const held: Socket[] = [];
  const piped: Socket[] = [];
  let config: string;
  let port: number;
  const logger = createLogger({ level: 'error' });

  before(async function () {
    if (spawnSync('systemd-notify', ['--version']).error || spawnSync('python3', ['--version']).error) this.skip();
    dir = mkdtempSync(join(tmpdir(), 'trustroll-systemd-'));
    pki = await ManagementPki.create({ now: new Date() });
    const ca = await CaAuthority.openOrInit(join(dir, 'ca'), { subject: 'CN=Printer Fleet Root,O=trustroll test', now: new Date() });
    const db = new FleetDb(join(dir, 'manager.db'));
    mosquitto = await Mosquitto.start(pki);
    // The gate: holds every connection while closed; once open, each one is piped to Mosquitto.
    gate = createServer((s) => {
      if (!open) { held.push(s); return; }
      const up = tcpConnect(mosquitto.port, '127.0.0.1');
      piped.push(s, up);
      s.pipe(up).pipe(s);
      s.on('error', () => up.destroy());
      up.on('error', () => s.destroy());
    });
    await new Promise<void>((r) => gate.listen(0, '127.0.0.1', r));
    port = (gate.address() as { port: number }).port;
    config = await provisionDevice(dir, 'printer-1', 'server', { pki, ca, db, brokerUrl: `mqtts://127.0.0.1:${port}`, ports: await serverPorts([['printer-1', 'server']]), naive: false, logger, store: 'hal-records' });
    db.close();
  });

  after(async () => {
    for (const s of [...held, ...piped]) s.destroy();
    await new Promise((r) => gate?.close(r));
    await mosquitto?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('READY=1 only once the link is up, WATCHDOG=1 every WATCHDOG_USEC/2, none while the agent is stopped', async () => {
    const sock = join(dir, 'notify.sock');
    writeFileSync(join(dir, 'receiver.py'), RECEIVER);
    const receiver = spawn('python3', [join(dir, 'receiver.py'), sock], { stdio: ['ignore', 'pipe', 'inherit'] });
    const got: { t: number; msg: string }[] = [];
    let bound = false;
    receiver.stdout!.on('data', (d: Buffer) => {
      for (const l of d.toString().split('\n').filter(Boolean)) {
        if (l === 'bound') bound = true;
        else got.push({ t: Number(l.slice(0, l.indexOf(' '))) * 1000, msg: l.slice(l.indexOf(' ') + 1) });
      }
    });
    try {
      await until(() => bound, 10_000, 'the receiver');
      const agent = startAgent(['--config', config], { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '600000' });
      const pings = () => got.filter((g) => g.msg.startsWith('WATCHDOG=1')).length;
      // The broker held back: the event loop runs and the link keeps trying, so the watchdog is fed, but it is not ready.
      await until(() => held.length > 0, 20_000, 'the agent to reach the gate');
      await until(() => pings() >= 3, 10_000, 'watchdog pings while linking');
      assert.ok(!got.some((g) => g.msg.includes('READY=1')), `READY=1 before the link is up: ${JSON.stringify(got)}`);
      open = true;
      const opened = Date.now();
      for (const s of held.splice(0)) s.destroy();
      await until(() => got.some((g) => g.msg.includes('READY=1')), 30_000, 'READY=1');
      const ready = got.find((g) => g.msg.includes('READY=1'))!;
      assert.ok(ready.t >= opened - 50, 'READY=1 came after the gate opened');
      assert.match(ready.msg, new RegExp(`MAINPID=${agent.proc.pid}\\b`));
      assert.ok(agent.out.some((l) => l.includes('"event":"ready"') && l.includes('"linked":true')), 'the agent says it is linked');
      // Every 300 ms while healthy.
      const before = pings();
      await sleep(1_500);
      assert.ok(pings() - before >= 3, `${pings() - before} pings in 1.5 s`);
      // A stopped (hung) agent feeds nothing: systemd would restart it after WatchdogSec.
      agent.proc.kill('SIGSTOP');
      await sleep(400);
      const frozen = pings();
      await sleep(1_500);
      assert.equal(pings(), frozen, 'no watchdog ping while the agent is stopped');
      agent.proc.kill('SIGCONT');
      await until(() => pings() > frozen, 5_000, 'the pings to resume');
      assert.equal(await stopAgent(agent), 0);
      assert.equal(got.filter((g) => g.msg.includes('READY=1')).length, 1, 'READY=1 once');
    } finally {
      receiver.kill();
    }
  });

  it('exit codes: 78 for a bad configuration or an unprovisioned device, 75 for a taken TLS port, 2 for bad usage', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ ...JSON.parse(readFileSync(config, 'utf8')) as object, role: 'printer' }));
    assert.equal(await startAgent(['--config', bad], {}).exited, 78);
    const unprovisioned = join(dir, 'unprovisioned.json');
    const c = JSON.parse(readFileSync(config, 'utf8')) as { hal: { records: { dir: string } } };
    writeFileSync(unprovisioned, JSON.stringify({ ...c, hal: { ...c.hal, records: { backend: 'file', dir: join(dir, 'empty-records') } } }));
    const u = startAgent(['--config', unprovisioned], {});
    assert.equal(await u.exited, 78, u.err.join('\n'));
    assert.ok(u.err.some((l) => l.includes('E_AGENT_NOT_PROVISIONED')), u.err.join('\n'));
    // The device's TLS port held by another program: may be free again later, so a restart can help.
    const tlsPort = (JSON.parse(readFileSync(config, 'utf8')) as { tls: { port: number } }).tls.port;
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(tlsPort, '127.0.0.1', r));
    try {
      const t = startAgent(['--config', config], {});
      assert.equal(await t.exited, 75, t.err.join('\n'));
    } finally {
      await new Promise((r) => squatter.close(r));
    }
    assert.equal(await startAgent(['--config', config, '--log-level', 'loud'], {}).exited, 2);
  });

  it('log level: --log-level wins over "logLevel" in agent.json, which wins over TRUSTROLL_LOG', async () => {
    open = true;
    const levels = async (args: string[], env: NodeJS.ProcessEnv) => {
      const a = startAgent(args, env);
      await until(() => a.out.some((l) => l.includes('"event":"ready"')), 30_000, 'ready');
      await stopAgent(a);
      return new Set(a.err.map((l) => (JSON.parse(l) as { level: string }).level));
    };
    // A linking agent logs at info ("connected to broker"), nothing at warn.
    const infoConfig = join(dir, 'info.json');
    writeFileSync(infoConfig, JSON.stringify({ ...JSON.parse(readFileSync(config, 'utf8')) as object, logLevel: 'info' }));
    assert.ok((await levels(['--config', infoConfig], { TRUSTROLL_LOG: 'error' })).has('info'), 'agent.json over TRUSTROLL_LOG');
    const cli = await levels(['--config', infoConfig, '--log-level', 'warn'], { TRUSTROLL_LOG: 'debug' });
    assert.ok(!cli.has('debug') && !cli.has('info'), `--log-level warn over agent.json and TRUSTROLL_LOG: ${[...cli].join(',')}`);
    assert.ok((await levels(['--config', config], { TRUSTROLL_LOG: 'info' })).has('info'), 'TRUSTROLL_LOG when nothing else says');
    assert.ok(!(await levels(['--config', config], { TRUSTROLL_LOG: 'error' })).has('info'), 'TRUSTROLL_LOG=error');
  });

  it('journal: each line carries its syslog priority when stderr is the journal stream, plain JSON otherwise; SIGHUP logs and keeps running', async () => {
    open = true;
    const file = join(dir, 'journal.log');
    const fd = openSync(file, 'w');
    const st = fstatSync(fd);
    const a = startAgent(['--config', config, '--log-level', 'info'], { JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd);
    closeSync(fd);
    await until(() => a.out.some((l) => l.includes('"event":"ready"')), 30_000, 'ready');
    a.proc.kill('SIGHUP');
    await until(() => readFileSync(file, 'utf8').includes('SIGHUP'), 10_000, 'the SIGHUP line');
    await sleep(300);
    assert.equal(a.proc.exitCode, null, 'still running after SIGHUP');
    assert.equal(await stopAgent(a), 0);
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    for (const l of lines) {
      const m = /^<(\d)>(\{.*\})$/.exec(l);
      assert.ok(m, `a line without its priority: ${l}`);
      const level = (JSON.parse(m[2]!) as { level: string }).level;
      assert.equal(m[1], { debug: '7', info: '6', warn: '4', error: '3' }[level], l);
    }
    assert.ok(lines.some((l) => l.startsWith('<6>')) && lines.some((l) => l.startsWith('<4>') && l.includes('SIGHUP')), lines.join('\n'));
    // JOURNAL_STREAM naming another stream (inherited, stderr redirected): plain JSON lines.
    const b = startAgent(['--config', config, '--log-level', 'info'], { JOURNAL_STREAM: '1:1' });
    await until(() => b.out.some((l) => l.includes('"event":"ready"')), 30_000, 'ready');
    await stopAgent(b);
    assert.ok(b.err.length > 0 && b.err.every((l) => l.startsWith('{')), b.err.join('\n'));
  });

  it('SIGHUP re-reads "logLevel" from agent.json (--log-level absent) and keeps running', async () => {
    open = true;
    const file = join(dir, 'hup.json');
    const base = JSON.parse(readFileSync(config, 'utf8')) as object;
    writeFileSync(file, JSON.stringify({ ...base, logLevel: 'error' }));
    const a = startAgent(['--config', file], {});
    await until(() => a.out.some((l) => l.includes('"event":"ready"')), 30_000, 'ready');
    assert.equal(a.err.length, 0, `nothing below error is logged: ${a.err.join('\n')}`);
    writeFileSync(file, JSON.stringify({ ...base, logLevel: 'info' }));
    a.proc.kill('SIGHUP');
    await until(() => a.err.some((l) => l.includes('SIGHUP')), 10_000, 'the SIGHUP line');
    const line = JSON.parse(a.err.find((l) => l.includes('SIGHUP'))!) as { level: string; logLevel: string; was: string };
    assert.deepEqual([line.level, line.logLevel, line.was], ['warn', 'info', 'error']);
    assert.equal(a.proc.exitCode, null, 'still running');
    assert.equal(await stopAgent(a), 0);
    assert.ok(a.err.some((l) => l.includes('"level":"info"')), 'info lines after the reload (the stop)');
  });

  it('Node 24: the bundle prints no deprecation warning from start to stop (--throw-deprecation; DEP0169 was MQTT.js parsing the broker URL with url.parse)', async function () {
    // The runtime the Node 24 test step caches (test/node24); not fetched here.
    const node24 = join(CACHE_DIR, 'runtimes', `${HOST_NODE24.name}-${HOST_NODE24.version}`, 'bin', 'node');
    if (spawnSync(node24, ['--version']).error) this.skip();
    open = true;
    // The bundle as the image runs it. Node 24.22 decides from the call stack whether url.parse warns (not from
    // within node_modules; not always from the bundle either), so a preload makes every url.parse call warn.
    const bundle = await bundleAgent(join(dir, 'bundle'));
    const preload = join(dir, 'url-parse-warns.cjs');
    writeFileSync(preload, "const url = require('node:url'); const parse = url.parse; url.parse = function (...a) { process.emitWarning('url.parse() called with ' + a[0], 'DeprecationWarning', 'DEP0169'); return parse.apply(this, a); };\n");
    const node = [node24, ...agentNodeFlags(HOST_NODE24.version), '--throw-deprecation', '--require', preload, bundle.file];
    const a = startAgent(['--config', config, '--log-level', 'info'], { NODE_OPTIONS: '' }, undefined, node);
    await until(() => a.out.some((l) => l.includes('"event":"ready"')) || a.proc.exitCode !== null, 30_000, 'ready');
    assert.ok(a.out.some((l) => l.includes('"linked":true')), `not linked: ${a.err.join('\n')}`);
    assert.equal(await stopAgent(a), 0, a.err.join('\n'));
    assert.ok(!a.err.some((l) => /Deprecation|DEP0/.test(l)), a.err.join('\n'));
    // The technician's selftest probes the broker with a connection of its own (agent/selftest/link-check.ts).
    const st = spawnSync(node[0]!, [...node.slice(1), 'selftest', '--config', config, '--json'], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' }, timeout: 60_000 });
    assert.doesNotMatch(st.stderr + st.stdout, /Deprecation|DEP0|url\.parse/, st.stderr);
    const link = (JSON.parse(st.stdout) as { checks: { name: string; status: string; message: string }[] }).checks.find((c) => c.name === 'link');
    assert.ok(link && /broker/.test(link.message), `selftest probed the broker: ${st.stdout}`);
  });
});
