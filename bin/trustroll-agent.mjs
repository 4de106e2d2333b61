#!/usr/bin/env node
// npm bin shim: load the TypeScript entry point through tsx.
import { register } from 'tsx/esm/api';
register();
await import('./trustroll-agent.ts');
