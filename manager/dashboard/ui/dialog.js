/**
 * A modal dialog on the browser's own <dialog> (focus trap, Escape closes).
 * Render it only while open; it calls onClose when dismissed.
 */
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';

/** A modal with a title, a body and an actions row. */
export function Dialog({ title, onClose, children, actions, wide }) {
  const ref = useRef(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => { if (d && d.open) d.close(); };
  }, []);
  return html`<dialog ref=${ref} class=${wide ? 'wide' : ''} aria-label=${title}
      onCancel=${(e) => { e.preventDefault(); onClose(); }}>
    <h2>${title}</h2>
    <div class="dialog-body">${children}</div>
    <div class="actions">${actions}</div>
  </dialog>`;
}
