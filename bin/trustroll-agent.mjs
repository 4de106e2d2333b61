#!/usr/bin/env node
// npm bin shim. In a git checkout it runs the TypeScript entry point through
// tsx (development); the npm package and the firmware image carry no .ts
// sources and run the built JavaScript in dist/ (npm run build).
import { existsSync } from 'node:fs';

const source = new URL('./trustroll-agent.ts', import.meta.url);
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import('../dist/bin/trustroll-agent.js');
}
