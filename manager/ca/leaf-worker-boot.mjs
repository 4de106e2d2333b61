/**
 * Entry of issueLeaves' worker threads. Node 20 workers do not inherit
 * tsx's loader (`--import tsx` in execArgv leaves ".ts" an unknown
 * extension there), so the worker registers tsx itself, then loads the
 * TypeScript worker body. Plain JavaScript so that Node can load it first.
 */
import { register } from 'tsx/esm/api';

register();
await import('./leaf-worker.ts');
