/**
 * Small DOM helpers shared by the pages' scripts (the demo page, the desktop QR page and
 * component, the phone approval page and the passkey list).
 *
 * @module dom
 */

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

/**
 * Create an element. `attrs` are attributes, except `class` (the class name) and `text` (the
 * text content); `undefined`, `null` and `false` values are left out, `true` sets an empty
 * attribute. Children (nodes or strings) are appended after the text; null ones are skipped.
 *
 * @param {string} tag
 * @param {Record<string, string | number | boolean | null | undefined>} [attrs]
 * @param {...(Node | string | null | undefined)} children
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

/**
 * Put a message in a status line (an `aria-live` region, so screen readers announce each
 * change). Its class is `status`, plus `status-{kind}` when a kind is given.
 *
 * @param {HTMLElement} node the status element
 * @param {string} text
 * @param {'info' | 'ok' | 'error'} [kind]
 */
export function announce(node, text, kind) {
  node.textContent = text;
  node.className = kind ? `status status-${kind}` : 'status';
}

/**
 * Disable a button while an operation runs (and mark it `aria-busy`), optionally with another
 * label; returns a function that re-enables it and puts the original content back.
 *
 * @param {HTMLButtonElement} button
 * @param {string} [label]
 * @returns {() => void}
 */
export function busy(button, label) {
  const original = button.innerHTML;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  if (label) button.textContent = label;
  return () => {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.innerHTML = original;
  };
}

/** Show `view` and hide the other elements of `views`. */
export function showOnly(views, view) {
  for (const v of views) v.hidden = v !== view;
}

/** Time left as `m:ss` (rounded up to the second, never negative). */
export function mmss(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** A timestamp (RFC 3339) as a medium date and short time; the input itself if it doesn't parse. */
export function formatDate(rfc3339) {
  const date = new Date(rfc3339);
  return Number.isNaN(date.getTime()) ? rfc3339 : dateFormat.format(date);
}
