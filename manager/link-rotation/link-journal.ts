/**
 * The durable progress of a management-root rotation, in
 * <mgmt>/link-rotation/journal.json (written atomically): the last step the
 * whole fleet completed, each device command exactly as first sent (a
 * resend repeats it byte for byte, so a device answers it from its stored
 * result), and which devices acknowledged which step. A rotation resumed
 * after a crash continues from here.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from '../../protocol/messages/command.ts';
import { ManagerError } from '../errors.ts';
import { writeFileAtomic } from '../pki/key-vault.ts';
import { stagingDir } from './link-material.ts';

/** The broker and device steps in the order the manager runs them (protocol/link-schedule.ts). */
export const LINK_PHASES = ['LB1', 'LC1', 'LB2', 'LC2', 'LB3'] as const;

/** One step of the rotation. */
export type LinkPhase = (typeof LINK_PHASES)[number];

/** The device steps. */
export type LinkDeviceStep = 'LC1' | 'LC2';

/** The journal's content. */
export interface LinkJournal {
  id: string;
  startedAt: string;
  /** Steps the whole fleet (broker or every device) completed, in order. */
  done: LinkPhase[];
  /** Commands as first sent, by device and step. */
  commands: Record<string, Partial<Record<LinkDeviceStep, Command>>>;
  /** Steps each device acknowledged. */
  acked: Record<string, LinkDeviceStep[]>;
  /** Broker restarts made so far. */
  restarts: number;
  finishedAt: string | null;
}

const file = (mgmtDir: string) => join(stagingDir(mgmtDir), 'journal.json');

/** The journal of the last management-root rotation, or null. */
export function loadLinkJournal(mgmtDir: string): LinkJournal | null {
  if (!existsSync(file(mgmtDir))) return null;
  try {
    return JSON.parse(readFileSync(file(mgmtDir), 'utf8')) as LinkJournal;
  } catch (err) {
    throw new ManagerError('E_MANAGER_DB', `${file(mgmtDir)}: the link rotation journal is unreadable (${(err as Error).message}); restore it from backup`);
  }
}

/** Durably replace the journal. */
export function saveLinkJournal(mgmtDir: string, j: LinkJournal): void {
  writeFileAtomic(file(mgmtDir), JSON.stringify(j, null, 1), 0o600);
}
