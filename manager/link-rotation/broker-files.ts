/**
 * Which TLS files the broker serves at each point of a management-root
 * rotation (protocol/link-schedule.ts): after LB1 both roots and its old
 * certificate, after LB2 its new certificate Sn, after LB3 the new root
 * alone; before and after a rotation the management folder's own.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BrokerTlsFiles } from './broker-control.ts';
import { loadLinkJournal, type LinkPhase } from './link-journal.ts';
import { stagedLinkMaterial, type LinkMaterial } from './link-material.ts';

/** Two PEM texts as one file. */
export const both = (a: string, b: string) => `${a.trim()}\n${b.trim()}\n`;

/** The broker's TLS files once broker step `phase` is done (LB1: both roots and its old certificate; LB2: Sn; LB3: R1 alone). */
export function brokerFilesAfter(mgmtDir: string, phase: LinkPhase, m: LinkMaterial): BrokerTlsFiles {
  const key = readFileSync(join(mgmtDir, 'broker-key.pem'), 'utf8');
  if (phase === 'LB1') return { ca: both(m.oldRoot, m.newRoot), cert: readFileSync(join(mgmtDir, 'broker.pem'), 'utf8'), key };
  if (phase === 'LB2') return { ca: both(m.oldRoot, m.newRoot), cert: m.broker, key };
  return { ca: m.newRoot, cert: m.broker, key };
}

/**
 * The TLS files the broker should be serving now, by the journal: those of
 * the last broker step an open rotation completed, else the folder's own
 * (for a broker that starts now, e.g. the embedded one of the CLI).
 */
export function brokerFilesNow(mgmtDir: string): BrokerTlsFiles {
  const j = loadLinkJournal(mgmtDir);
  const m = stagedLinkMaterial(mgmtDir);
  const last = j && j.finishedAt === null && m ? [...j.done].reverse().find((p) => p.startsWith('LB')) : undefined;
  if (last) return brokerFilesAfter(mgmtDir, last, m!);
  const read = (name: string) => readFileSync(join(mgmtDir, name), 'utf8');
  return { ca: read('ca.pem'), cert: read('broker.pem'), key: read('broker-key.pem') };
}
