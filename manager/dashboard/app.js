/**
 * The dashboard's entry: top bar (who is logged in, live link and broker
 * state), the tabs, and the view the location hash names.
 */
import { html } from 'htm/preact';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { useApi } from './lib/api.js';
import { startLive, useLive, useLiveState } from './lib/live.js';
import { href, useRoute } from './lib/hooks.js';
import { Dot, ErrorBox } from './ui/common.js';
import { FleetView } from './views/fleet.js';
import { RotationView } from './views/rotation.js';
import { BrokerView } from './views/broker.js';
import { CertificatesView } from './views/certificates.js';
import { AuditView } from './views/audit.js';

const TABS = [
  ['fleet', 'Fleet', FleetView],
  ['rotation', 'Rotation', RotationView],
  ['broker', 'Broker', BrokerView],
  ['certificates', 'Certificates', CertificatesView],
  ['audit', 'Audit', AuditView],
];

const LIVE_TEXT = { connecting: 'connecting…', open: 'live', reconnecting: 'reconnecting…', down: 'no live updates' };

/** Live-stream and broker dots: green when the manager streams and holds its broker session. */
function LinkState() {
  const live = useLiveState();
  const broker = useApi('/api/broker');
  const [stale, setStale] = useState(null);
  useLive('broker', (e) => setStale(e.stale));
  useLive('reconnect', broker.reload);
  // Live broker events carry $SYS samples, not the manager's own session state: poll that now and then.
  useEffect(() => { const t = setInterval(broker.reload, 30_000); return () => clearInterval(t); }, []);
  const b = broker.data;
  const brokerOk = b ? b.connected && !(stale ?? b.stale) : null;
  const brokerText = !b ? (broker.error ? `unknown (${broker.error.code})` : '…')
    : !b.connected ? 'manager not connected' : (stale ?? b.stale) ? 'connected, no $SYS statistics' : 'connected';
  return html`<div class="link-state">
    <span class="ls" title="Live updates from the manager (Server-Sent Events)"><${Dot} online=${live === 'open' ? true : live === 'connecting' ? null : false} label=${LIVE_TEXT[live]} /> ${LIVE_TEXT[live]}</span>
    <a class="ls" href=${href('broker')} title=${b ? b.url : ''}><${Dot} online=${brokerOk} label=${brokerText} /> broker ${brokerText}</a>
  </div>`;
}

/** Who the API says we are. */
function Who({ me }) {
  if (me.error) return html`<span class="who bad" title=${me.error.message}>not signed in (${me.error.code})</span>`;
  if (!me.data) return html`<span class="who muted">…</span>`;
  const { name, role, via } = me.data;
  return html`<span class="who" title=${`signed in with ${via === 'certificate' ? 'an operator certificate' : 'a token'}`}>
    ${name} <span class=${`badge role-${role}`}>${role === 'admin' ? 'admin' : 'read only'}</span></span>`;
}

function App() {
  const route = useRoute();
  const me = useApi('/api/me');
  const tab = TABS.find(([id]) => id === route.view) ?? TABS[0];
  const View = tab[2];
  return html`
    <header class="top">
      <div class="brand">trustroll</div>
      <nav class="tabs">${TABS.map(([id, label]) => html`<a href=${href(id)} class=${id === tab[0] ? 'active' : ''} aria-current=${id === tab[0] ? 'page' : null}>${label}</a>`)}</nav>
      <${LinkState} />
      <${Who} me=${me} />
    </header>
    <main>
      ${me.error && me.error.status === 401 ? html`<${ErrorBox} error=${me.error} title="Not signed in" />` : null}
      <${View} route=${route} me=${me.data} />
    </main>`;
}

startLive();
const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
