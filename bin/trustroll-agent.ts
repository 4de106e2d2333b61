/**
 * `trustroll-agent`: the device side's command line.
 *   init       create the device key in the configured HAL (if missing) and print its CSR
 *   provision  store the root and the device certificate (factory or first boot)
 *   run        the device runtime (management link, mTLS service or handshakes)
 *   status     the field technician's local check: trust store, the agent, its link, permissions, refused commands, the key (read-only; technician-commands.ts)
 *   selftest   the technician's self-test: all of that, plus a broker probe and live handshakes (read-only; technician-commands.ts)
 * Exit codes: 0 ok, 1 a check failed (the verdict is NOT OK, or the store rolled back: E_STORE_REGRESSED / E_HAL_ROLLBACK), 2 bad usage or configuration;
 * `run` has its own, which tell a supervisor whether to restart it (agent/run-process.ts: 75 transient, 77 permission, 78 configuration).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { KEY_ALGORITHMS, type KeyAlgorithm } from '../hal/key-store.ts';
import { AgentError } from '../agent/errors.ts';
import { HalError } from '../hal/errors.ts';
import { loadAgentConfig, openAgentRuntime } from '../agent/config.ts';
import { releaseStartupMemory } from '../agent/startup-memory.ts';
import { systemClock } from '../protocol/clock.ts';
import { createLogger, type LogLevel } from '../protocol/log.ts';
import { LOG_LEVELS, logLevelOf, logLevelOnDisk, onJournal, runExitCode } from '../agent/run-process.ts';
import { CommandLine, UsageExit, type OptionValues } from './command-line.ts';
import { stopRequested } from './stop-signal.ts';
import { exitCodeForError, registerTechnicianCommands } from './technician-commands.ts';
import { versionLine } from './version.ts';

// What only one command needs is imported when that command runs: the
// running agent (`run`, for months) never holds the technician's tools in
// memory, nor they the runtime (image/README.md, "Memory").

const program = new CommandLine('trustroll-agent', 'trustroll device agent', versionLine());
/** The log level in force: `run` sets it from --log-level and agent.json, and again on SIGHUP. */
let level: LogLevel = logLevelOf(undefined, undefined);
/** JSON lines on stderr; prefixed with their syslog priority when stderr is the journal. */
const logger = createLogger({ level: () => level, priorities: onJournal(2) });
/** How a failure maps to the exit code (`run` replaces it with its own table). */
let exitCodeOf: (err: unknown) => number = exitCodeForError;
/** How long after `ready` the start-up's garbage is handed back (agent/startup-memory.ts). */
const STARTUP_RELEASE_DELAY_MS = 1000;
const mb = (bytes: number) => Math.round(bytes / 1e5) / 10;
const KEY = 'device';

const CONFIG = { flags: '--config <file>', description: 'agent configuration (JSON)', required: true };

program.command({
  name: 'init',
  description: 'create the device key in the HAL if it does not exist, and print a CSR for enrollment',
  options: [
    CONFIG,
    { flags: '--replace-lost-key', description: 'after a storage roll-back lost the key an earlier init made: make a new one (enrol its CSR again)' },
    { flags: '--algorithm <alg>', description: 'algorithm of a new device key (RSA for fleets whose peers verify only RSA); an existing key is kept and must match', choices: KEY_ALGORITHMS },
  ],
  action: async (v: OptionValues) => {
    const o = v as { config: string; replaceLostKey: boolean; algorithm?: KeyAlgorithm };
    const rt = await openAgentRuntime(loadAgentConfig(o.config), { clock: systemClock, logger });
    try {
      let info = await rt.keys.get(KEY);
      const integrity = rt.halIntegrity();
      if (!info && integrity?.rolledBack && !o.replaceLostKey) {
        // Never make a new key silently over a lost one: a CSR for the lost key may already be enrolled.
        throw new HalError('E_HAL_ROLLBACK', `${integrity.detail}; the device key "${KEY}" made by an earlier init is gone. If its CSR was never enrolled, run "trustroll-agent init --config ${o.config} --replace-lost-key" and enrol the new CSR; if it was enrolled, do the same and have the manager replace the enrolment ("trustroll enroll --replace")`);
      }
      if (info && o.algorithm && info.algorithm !== o.algorithm) {
        throw new HalError('E_HAL_KEY_EXISTS', `the device key "${KEY}" in the ${rt.keys.backend} backend already exists as ${info.algorithm}, not ${o.algorithm}; init never replaces a key. Run init without --algorithm to print its CSR again`);
      }
      info ??= await rt.keys.create(KEY, o.algorithm ?? 'P-256');
      const { buildCsr } = await import('../protocol/csr.ts');
      const csr = await buildCsr({ commonName: rt.config.deviceId, spki: info.spki, algorithm: info.algorithm, sign: (d) => rt.keys.sign(KEY, d) });
      process.stdout.write(csr);
    } finally {
      await rt.close();
    }
  },
});

program.command({
  name: 'provision',
  description: 'store the fleet root and this device\'s certificate (checked against the root and the HAL key)',
  options: [
    CONFIG,
    { flags: '--root <pem>', description: 'the fleet root certificate (R0); with separate roots, the other side\'s root this device verifies its peers with ("trustroll ca root --root client" for a server)', required: true },
    { flags: '--cert <pem>', description: 'this device\'s certificate, issued for its HAL key', required: true },
    { flags: '--issuer-root <pem>', description: 'separate-roots fleets: the root that issued --cert ("trustroll ca root --root server" for a server), kept to verify the device\'s next certificate' },
  ],
  action: async (v: OptionValues) => {
    const o = v as { config: string; root: string; cert: string; issuerRoot?: string };
    const config = loadAgentConfig(o.config);
    const rt = await openAgentRuntime(config, { clock: systemClock, logger });
    try {
      if (rt.agent) throw new AgentError('E_AGENT_CONFIG', `device ${config.deviceId} is already provisioned; its trust store changes only through rotations`);
      const { Agent } = await import('../agent/agent.ts');
      await Agent.provision({ deviceId: config.deviceId, role: config.role, store: rt.store, keys: rt.keys, clock: systemClock, logger },
        { root: readFileSync(o.root, 'utf8'), certificate: readFileSync(o.cert, 'utf8'), keyLabel: KEY, ...(o.issuerRoot ? { issuerRoot: readFileSync(o.issuerRoot, 'utf8') } : {}) });
      process.stdout.write(`provisioned ${config.deviceId} (${config.role})\n`);
    } finally {
      await rt.close();
    }
  },
});

program.command({
  name: 'run',
  description: 'run the device: management link to the broker, the device\'s mTLS service or its handshakes',
  options: [CONFIG, { flags: '--log-level <level>', description: 'debug, info, warn or error; wins over "logLevel" in the configuration, which wins over $TRUSTROLL_LOG', choices: LOG_LEVELS }],
  action: async (v: OptionValues) => {
    const o = v as { config: string; logLevel?: LogLevel };
    exitCodeOf = runExitCode;
    const stop = stopRequested();
    const configPath = resolve(o.config);
    // SIGHUP (systemctl reload) re-reads the log level only; any other setting needs a restart.
    process.on('SIGHUP', () => {
      const was = level;
      level = logLevelOf(o.logLevel, logLevelOnDisk(configPath));
      logger.warn('SIGHUP: log level re-read, nothing else reloaded (restart the agent for other settings)', { logLevel: level, was, from: o.logLevel ? '--log-level' : configPath });
    });
    const config = loadAgentConfig(o.config);
    level = logLevelOf(o.logLevel, config.logLevel);
    const { runSupervised } = await import('../agent/run-supervision.ts');
    const supervision = runSupervised(logger);
    const { runDevice } = await import('../agent/runtime.ts');
    const device = await runDevice(config, { clock: systemClock, logger, configPath });
    supervision.attach(device);
    // Stopped while it links (up to 30 s): it stops at once, without printing ready.
    const linked = await Promise.race([device.linked, stop.then(() => null)]);
    if (linked !== null) {
      process.stdout.write(JSON.stringify({ event: 'ready', deviceId: device.deviceId, linked, tlsPort: device.tlsPort }) + '\n');
      // Once the start-up burst is over, hand its garbage back (the launcher exposes gc(); a no-op elsewhere).
      setTimeout(() => {
        const freed = releaseStartupMemory();
        if (freed) logger.debug('start-up memory released', { deviceId: device.deviceId, rssBeforeMB: mb(freed.rssBefore), rssAfterMB: mb(freed.rssAfter), ms: Math.round(freed.ms) });
      }, STARTUP_RELEASE_DELAY_MS).unref();
      // The handshake tally, every 500 ms while it moves (a device that makes no handshakes prints none).
      let printed = '';
      const tally = setInterval(() => {
        const line = JSON.stringify({ event: 'tally', deviceId: device.deviceId, probe: { ...device.probeTally(), failures: undefined } });
        if (line !== printed) process.stdout.write((printed = line) + '\n');
      }, 500);
      await stop;
      clearInterval(tally);
    }
    supervision.stop();
    await device.stop();
    process.stdout.write(JSON.stringify({ event: 'stopped', deviceId: device.deviceId, probe: device.probeTally() }) + '\n');
  },
});

registerTechnicianCommands(program, CONFIG);

try {
  await program.run(process.argv.slice(2));
} catch (err) {
  // The usage message, help or version is already printed.
  if (err instanceof UsageExit) process.exitCode = err.exitCode;
  else {
    process.stderr.write(`trustroll-agent: ${(err as Error).message}\n`);
    // A storage roll-back is a failed check of the device, not a usage or configuration mistake.
    process.exitCode = exitCodeOf(err);
  }
}
