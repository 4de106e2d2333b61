/**
 * What "abort" means to an operator, the same from the API, the dashboard
 * and `trustroll rotate --abort`: roll every device back to its state
 * before the rotation while that is still possible, else stop where it is
 * (every intermediate state authenticates) and say why.
 */
import type { Logger } from '../../protocol/log.ts';
import { withoutCode } from '../../protocol/errors.ts';
import type { ManagerError } from '../errors.ts';
import type { Orchestrator } from './orchestrator.ts';

/** Abort the loaded rotation: a rollback while possible, else a stop where it is. */
export function abortRotation(orchestrator: Pick<Orchestrator, 'current' | 'rollback' | 'abort'>, actor: string, log: Logger): 'rolling-back' | 'aborted' {
  const rot = orchestrator.current();
  if (rot && rot.status !== 'rolling-back') {
    try {
      orchestrator.rollback(`aborted by ${actor}: rolling back`);
      return 'rolling-back';
    } catch (err) {
      if ((err as ManagerError).code !== 'E_ROLLBACK_IMPOSSIBLE') throw err;
      log.warn('rollback no longer possible; the rotation stops where it is', { rotationId: rot.id, reason: (err as Error).message });
      // The rotation's recorded error (and so the API answer and the audit entry) carries the code.
      orchestrator.abort(`E_ROLLBACK_IMPOSSIBLE: aborted by ${actor}; ${withoutCode((err as Error).message)}`);
      return 'aborted';
    }
  }
  orchestrator.abort(`aborted by ${actor}: stopped sending, every device stays where it is`);
  return 'aborted';
}
