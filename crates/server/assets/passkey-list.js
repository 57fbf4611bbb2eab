/**
 * The account's passkeys as the demo page lists them: where each one lives (synced,
 * device-bound), its provider's name and icon, how it connects, where it was created and
 * last used. Pure rendering: the page passes the elements and what a "Delete" click does.
 */
import { el, formatDate } from '/assets/dom.js';

const TRANSPORTS = {
  internal: 'this device',
  hybrid: 'phone (cross-device)',
  usb: 'USB',
  nfc: 'NFC',
  ble: 'Bluetooth',
  'smart-card': 'smart card',
};

const FORM_FACTORS = { desktop: 'computer', phone: 'phone', tablet: 'tablet', unknown: 'unknown device' };

function where(passkey) {
  if (passkey.backupState) {
    return { badge: 'Synced', kind: 'sync', text: 'Backed up and synced by its provider — available on your other signed-in devices.' };
  }
  if (passkey.backupEligible) {
    return { badge: 'Can sync', kind: 'neutral', text: 'Can be synced by its provider, but is not backed up yet.' };
  }
  return { badge: 'Device-bound', kind: 'device', text: 'Lives only on this authenticator and is never copied. If you lose it, the passkey is gone.' };
}

function attachmentText(attachment) {
  if (attachment === 'platform') return 'Built into the device';
  if (attachment === 'cross-platform') return 'Separate device (security key or phone)';
  return 'Unknown';
}

function deviceText(device) {
  if (!device) return '';
  const parts = [device.os, device.browser].filter((p) => p && p.toLowerCase() !== 'unknown');
  const ff = FORM_FACTORS[device.formFactor] ?? device.formFactor;
  if (ff && device.formFactor !== 'unknown') parts.push(ff);
  return parts.length ? parts.join(' · ') : 'an unknown device';
}

const AVATAR_COLORS = ['#3346c8', '#0f766e', '#9333ea', '#b45309', '#be123c', '#1d4ed8', '#4d7c0f'];

function providerIcon(provider) {
  const box = document.createElement('div');
  box.className = 'passkey-icon';
  const light = safeImage(provider?.iconLight);
  const dark = safeImage(provider?.iconDark);
  if (light || dark) {
    const picture = document.createElement('picture');
    if (light && dark) {
      const source = document.createElement('source');
      source.media = '(prefers-color-scheme: dark)';
      source.srcset = dark;
      picture.append(source);
    }
    const img = document.createElement('img');
    img.src = light || dark;
    img.alt = '';
    img.width = 36;
    img.height = 36;
    picture.append(img);
    box.append(picture);
  } else {
    const known = providerName(provider) !== 'Unknown passkey provider';
    const name = known ? provider.name : '?';
    const letter = known ? (name.match(/[\p{L}\p{N}]/u)?.[0] ?? '?').toUpperCase() : '?';
    const avatar = document.createElement('span');
    avatar.className = 'avatar';
    avatar.textContent = letter;
    if (known) {
      let hash = 0;
      for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
      avatar.style.background = AVATAR_COLORS[hash % AVATAR_COLORS.length];
    } else {
      avatar.classList.add('avatar-unknown');
    }
    avatar.setAttribute('aria-hidden', 'true');
    box.append(avatar);
  }
  return box;
}

/** Only inline images from the server's provider table; never a remote URL. */
function safeImage(uri) {
  return typeof uri === 'string' && /^data:image\/(svg\+xml|png|webp|jpeg|gif)[;,]/i.test(uri) ? uri : '';
}

/** The provider's name for people; the server says "unknown" for AAGUIDs it has no name for. */
export function providerName(provider) {
  const name = provider?.name?.trim();
  return name && name.toLowerCase() !== 'unknown' ? name : 'Unknown passkey provider';
}

/**
 * Fills `list` with one item per passkey (and shows `empty` when there is none); `onDelete`
 * is called with the passkey, the number of passkeys and the button that asked.
 */
export function renderPasskeys(list, empty, passkeys, { onDelete }) {
  list.replaceChildren();
  empty.hidden = passkeys.length > 0;
  passkeys.forEach((passkey, index) => {
    const provider = providerName(passkey.provider);
    const li = el('li', { class: 'passkey' });
    li.dataset.credentialId = passkey.credentialId;
    const headingId = `passkey-${index}-name`;
    li.setAttribute('aria-labelledby', headingId);

    li.append(providerIcon(passkey.provider));

    const main = el('div', { class: 'passkey-main' });
    const heading = el('h3', { class: 'passkey-name', text: provider });
    heading.id = headingId;
    main.append(heading);

    const lives = where(passkey);
    const badges = el('ul', { class: 'badges' });
    badges.setAttribute('aria-label', 'Summary');
    badges.append(el('li', { class: `badge badge-${lives.kind}`, text: lives.badge }));
    if (passkey.authenticatorAttachment === 'platform') badges.append(el('li', { class: 'badge', text: 'On-device' }));
    if (passkey.authenticatorAttachment === 'cross-platform') badges.append(el('li', { class: 'badge', text: 'Roaming' }));
    if (passkey.credentialId && passkey.credentialId === safeLastCredential()) {
      badges.append(el('li', { class: 'badge', text: 'Used in this browser' }));
    }
    main.append(badges);

    const dl = el('dl', { class: 'details' });
    const row = (term, value) => {
      dl.append(el('dt', { text: term }), el('dd', { text: value }));
    };
    row('Where it lives', lives.text);
    row('Kind', attachmentText(passkey.authenticatorAttachment));
    const transports = (passkey.transports ?? []).map((t) => TRANSPORTS[t] ?? t);
    row('Connects via', transports.length ? transports.join(', ') : 'Not reported');
    row('Created', `${formatDate(passkey.createdAt)} on ${deviceText(passkey.createdOn)}`);
    row(
      'Last used',
      passkey.lastUsedAt
        ? `${formatDate(passkey.lastUsedAt)}${passkey.lastUsedOn ? ` on ${deviceText(passkey.lastUsedOn)}` : ''}`
        : 'Not used to sign in yet',
    );
    main.append(dl);
    li.append(main);

    const actions = el('div', { class: 'passkey-actions' });
    const del = el('button', { class: 'button button-secondary button-small passkey-delete', text: 'Delete' });
    del.type = 'button';
    del.setAttribute('aria-label', `Delete passkey from ${provider}, created ${formatDate(passkey.createdAt)}`);
    del.addEventListener('click', () => onDelete(passkey, passkeys.length, del));
    actions.append(del);
    li.append(actions);

    list.append(li);
  });
}

function safeLastCredential() {
  try {
    return localStorage.getItem('handoff:lastCredentialId');
  } catch {
    return null;
  }
}
