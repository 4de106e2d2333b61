/**
 * Core benchmark (issue: rotation core). Prints one JSON object:
 * certificate issuance rate against the signature floor, device handler
 * latency (verify + durable persist), and an in-process rotation of 1,000
 * devices for both schedules. Run: npx tsx bench/core.ts [devices]
 */
import 'reflect-metadata';
import { cpus } from 'node:os';
import { BATCHED, SIX_STEP } from '../protocol/steps.ts';
import { measureCryptoFloor } from './crypto-floor.ts';
import { benchHandlers } from './handler.ts';
import { benchRotation } from './rotation.ts';
import { benchIssuance } from './issuance.ts';

const devices = Number(process.argv[2] ?? 1000);
const servers = Math.max(1, Math.round(devices / 5));
const cryptoFloor = measureCryptoFloor();
const floor = { signPerSec: cryptoFloor.nodeP256SignPerSec, verifyPerSec: cryptoFloor.nodeP256VerifyPerSec };
const result = {
  bench: 'core',
  at: new Date().toISOString(),
  node: process.version,
  cpus: cpus().length,
  cryptoFloor,
  issuance: await benchIssuance({ leaves: 4000 }),
  handler: await benchHandlers(300),
  rotation: [
    await benchRotation(SIX_STEP, servers, devices - servers, floor),
    await benchRotation(BATCHED, servers, devices - servers, floor),
  ],
};
process.stdout.write(JSON.stringify(result, null, 2) + '\n');
