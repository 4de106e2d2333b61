/**
 * Wires the management-root rotation into a device's MQTT link: the link's
 * own commands go to a LinkRotator, and each connection presents the
 * rotator's material through a LinkConnector (new link certificate first).
 * A link key inside a token is served by the HAL's TLS terminator, which
 * holds its material for its lifetime; such a link is left as it is (its
 * link commands are refused as an unknown schedule).
 */
import type { KeyStore } from '../../hal/key-store.ts';
import { commandVerifier } from '../../protocol/command-signature.ts';
import type { LinkConfig } from '../config.ts';
import type { LinkTls, CheckedLink } from '../link-tls.ts';
import type { DeviceLinkOptions } from '../mqtt-link.ts';
import { LinkConnector } from './link-connector.ts';
import { LinkRotator } from './link-rotator.ts';

/** The link options with link rotation added; unchanged for a token-held link key (`stream`). */
export function withLinkRotation(opts: DeviceLinkOptions, c: { link: LinkConfig; linkDir: string; checked: CheckedLink; linkTls: LinkTls; keys: KeyStore }): DeviceLinkOptions {
  if (opts.stream || c.linkTls.stream) return opts;
  const rotator = new LinkRotator({
    place: { dir: c.linkDir, link: c.link }, checked: c.checked, key: c.linkTls.tls.key, agent: opts.agent, keys: c.keys, clock: opts.clock, logger: opts.logger,
    verifySignature: commandVerifier(c.checked.commandKeys),
  });
  const connector = new LinkConnector(opts.url, () => rotator.material(), opts.logger.child({ deviceId: opts.agent.deviceId, component: 'link-connector' }));
  return { ...opts, linkRotation: rotator, stream: () => connector.open() };
}
