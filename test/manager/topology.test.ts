/**
 * Routes of relayed devices (manager/fleet/topology.ts): a device goes through
 * an enrolled peer of the other role that talks to it over mutual TLS and
 * reaches the broker itself; the fleet's topology label follows.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FleetDb } from '../../manager/fleet/fleet-db.ts';
import { describeTopology, setRoute, topology } from '../../manager/fleet/topology.ts';
import type { Role } from '../../protocol/steps.ts';

describe('manager topology: routes through relays', () => {
  let dir: string;
  let db: FleetDb;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'trustroll-topology-'));
    db = new FleetDb(join(dir, 'manager.db'));
    const devices: [string, Role][] = [['prn-1', 'server'], ['prn-2', 'server'], ['cli-1', 'client'], ['cli-2', 'client'], ['cli-3', 'client']];
    for (const [id, role] of devices) db.addDevice({ id, role, commonName: id, spki: Buffer.from(id), certificate: '-' });
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('labels the fleet by its relays: direct, server-relay, client-relay, mixed', () => {
    assert.equal(topology(db).name, 'direct');
    setRoute(db, 'cli-1', 'prn-1');
    assert.equal(topology(db).name, 'server-relay');
    assert.deepEqual(topology(db).devices.find((d) => d.id === 'prn-1')!.relaysFor, ['cli-1']);
    setRoute(db, 'prn-2', 'cli-2');
    assert.equal(topology(db).name, 'mixed');
    setRoute(db, 'cli-1', null);
    assert.equal(topology(db).name, 'client-relay');
    assert.equal(db.deviceVia('prn-2'), 'cli-2');
    assert.match(describeTopology(topology(db)), /cli-2 \(client\) relays for prn-2/);
  });

  it('refuses a relay of the same role, an unknown one, itself, one outside the peering graph, and two hops', () => {
    assert.throws(() => setRoute(db, 'cli-1', 'cli-2'), { code: 'E_ROUTE_INVALID' });
    assert.throws(() => setRoute(db, 'cli-1', 'prn-9'), { code: 'E_ROUTE_INVALID' });
    assert.throws(() => setRoute(db, 'cli-1', 'cli-1'), { code: 'E_ROUTE_INVALID' });
    assert.throws(() => setRoute(db, 'cli-9', 'prn-1'), { code: 'E_DEVICE_UNKNOWN' });
    db.setPeering([{ server: 'prn-1', client: 'cli-1' }, { server: 'prn-2', client: 'cli-2' }, { server: 'prn-2', client: 'cli-3' }]);
    assert.throws(() => setRoute(db, 'cli-1', 'prn-2'), /not in the peering graph/);
    setRoute(db, 'prn-2', 'cli-3');
    assert.throws(() => setRoute(db, 'cli-2', 'prn-2'), /one hop/, 'a relayed device cannot relay');
    setRoute(db, 'cli-1', 'prn-1');
    assert.throws(() => setRoute(db, 'prn-1', 'cli-1'), /one hop/, 'a relay cannot be relayed');
    assert.deepEqual([...db.routes()].sort(), [['cli-1', 'prn-1'], ['prn-2', 'cli-3']]);
  });
});
