/**
 * A configuration's fingerprint, kept by the running agent (health file)
 * and by its record of a refused command, so the technician's tools can
 * tell that the agent runs another configuration than the file on disk,
 * and which top-level settings differ. Hashes only; no value is kept.
 */
import { createHash } from 'node:crypto';
import type { AgentConfig } from './config-types.ts';

/** The whole configuration's hash and each top-level setting's (short), with the file it came from. */
export interface ConfigDigest {
  path: string | null;
  sha256: string;
  sections: Record<string, string>;
}

const sha = (v: unknown) => createHash('sha256').update(JSON.stringify(v) ?? 'undefined').digest('hex');

/** The digest of a parsed configuration (as loadAgentConfig returns it); `path` is the file it came from. */
export function configDigest(config: AgentConfig, path: string | null): ConfigDigest {
  const sections: Record<string, string> = {};
  for (const [k, v] of Object.entries(config)) if (v !== undefined) sections[k] = sha(v).slice(0, 16);
  return { path, sha256: sha(config), sections };
}

/** The top-level settings whose values differ between two digests (added, removed or changed). */
export function changedSections(a: ConfigDigest, b: ConfigDigest): string[] {
  const keys = new Set([...Object.keys(a.sections), ...Object.keys(b.sections)]);
  return [...keys].filter((k) => a.sections[k] !== b.sections[k]).sort();
}
