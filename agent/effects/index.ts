/**
 * The only map from effect names to handlers; the dispatcher applies a
 * step's effects through it in order.
 */
import type { EffectHandlers } from './context.ts';
import { storeDistribution } from './store-distribution.ts';
import { storeNewRoot } from './store-new-root.ts';
import { installClientCert, installServerCert } from './install-cert.ts';
import { dropOldClientCert, dropOldRoots } from './drop-old.ts';
import { rollbackClientCert, rollbackRoots } from './rollback.ts';
import { catchUp } from './catch-up.ts';
import { renewCert } from './renew-cert.ts';
import { dropOldIssuerRoots, storeIssuerDistribution, storeIssuerNewRoot } from './issuer-roots.ts';

/** One handler per effect. */
export const EFFECT_HANDLERS: EffectHandlers = {
  'store-distribution': storeDistribution,
  'store-new-root': storeNewRoot,
  'install-client-cert': installClientCert,
  'install-server-cert': installServerCert,
  'drop-old-roots': dropOldRoots,
  'drop-old-client-cert': dropOldClientCert,
  'store-issuer-distribution': storeIssuerDistribution,
  'store-issuer-new-root': storeIssuerNewRoot,
  'drop-old-issuer-roots': dropOldIssuerRoots,
  'rollback-client-cert': rollbackClientCert,
  'rollback-roots': rollbackRoots,
  'catch-up': catchUp,
  'renew-cert': renewCert,
};
