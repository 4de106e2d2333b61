/**
 * `npm run faults`: the full fault matrix (see matrix.ts), progress on
 * stderr, one JSON summary on stdout; exit code 1 if any invariant was
 * violated or a roll-back went undetected. `--seed <n>` varies the random
 * instants and devices.
 */
import { fullMatrix, runFaultMatrix } from './matrix.ts';

const i = process.argv.indexOf('--seed');
const seed = i > 0 ? Number(process.argv[i + 1]) : 1;
const summary = await runFaultMatrix(fullMatrix(seed), { progress: (l) => process.stderr.write(`${l}\n`) });
process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
process.exitCode = summary.invariantViolations === 0 && summary.regressions.undetected === 0 ? 0 : 1;
