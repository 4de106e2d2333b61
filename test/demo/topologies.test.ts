/**
 * Relay topologies end to end (issue 11; PROTOCOL.md "Who can reach
 * whom"): device processes over a real Mosquitto, some reaching the broker
 * only through a peer over their own mutual TLS, while clients keep
 * handshaking and OpenSSL and GnuTLS check every step boundary. Each
 * topology rotates to completion with 0 failed handshakes; the relayed
 * devices have no broker session at all. The variants are spread over the
 * topologies (schedule, RSA legacy fleet, same or new subject).
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runFleetDemo } from '../../demo/fleet-demo.ts';
import type { DemoTopology } from '../../demo/topology-plan.ts';

describe('relay topologies: a rotation through relays over the devices\' own mutual TLS, 0 failed handshakes', function () {
  this.timeout(240_000);

  const cases: { topology: DemoTopology; schedule: string; algorithm?: 'RSA-2048'; newSubject?: string }[] = [
    { topology: 'server-relay', schedule: 'batched', algorithm: 'RSA-2048', newSubject: 'CN=Printer Fleet Root 2027,O=trustroll demo' },
    { topology: 'client-relay', schedule: 'six-step' },
    { topology: 'mixed', schedule: 'six-step', newSubject: 'CN=Printer Fleet Root 2027,O=trustroll demo' },
  ];
  for (const c of cases) {
    it(`${c.topology}: ${c.schedule}${c.algorithm ? `, ${c.algorithm} fleet` : ''}, ${c.newSubject ? 'new' : 'same'} subject`, async () => {
      const r = await runFleetDemo({ servers: 2, clients: 3, schedule: c.schedule, naive: false, broker: 'mosquitto', paceMs: 120, minHandshakes: 300, topology: c.topology, algorithm: c.algorithm, newSubject: c.newSubject, keep: true });
      try {
        assert.equal(r.rotation.status, 'complete', r.rotation.error ?? '');
        assert.equal(r.topology.name, c.topology);
        const relayed = Object.entries(r.topology.relayed);
        assert.ok(relayed.length > 0, 'some devices are relayed');
        for (const [id, relay] of relayed) {
          const config = JSON.parse(readFileSync(join(r.dir!, 'devices', id, 'agent.json'), 'utf8')) as { link?: unknown; via?: { relay: string } };
          assert.equal(config.link, undefined, `${id} has no broker session`);
          assert.equal(config.via?.relay, relay);
          const relayConfig = JSON.parse(readFileSync(join(r.dir!, 'devices', relay, 'agent.json'), 'utf8')) as { relay?: { for: string[] } };
          assert.ok(relayConfig.relay?.for.includes(id), `${relay} relays for ${id}`);
        }
        for (const s of r.rotation.steps) assert.equal(s.acked, s.of, `every device acknowledged ${s.step}`);
        assert.ok(r.handshakes.attempted >= 300, `${r.handshakes.attempted} handshakes`);
        assert.equal(r.handshakes.failed, 0, r.handshakes.failures.join('\n'));
        assert.ok(r.crossStack.openssl.attempted > 0 && r.crossStack.gnutls.attempted > 0);
        assert.equal(r.crossStack.openssl.failed + r.crossStack.gnutls.failed, 0, r.crossStack.failures.join('\n'));
        if (c.algorithm) assert.equal(r.rotation.roots.to.algorithm, c.algorithm);
        assert.equal(r.rotation.roots.to.subject, c.newSubject ? 'CN=Printer Fleet Root 2027,O=trustroll demo' : r.rotation.roots.from.subject);
      } finally {
        if (r.dir) rmSync(r.dir, { recursive: true, force: true });
      }
    });
  }
});
