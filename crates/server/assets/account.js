/**
 * The demo page's account view: who is signed in, the account's passkeys (add, delete with
 * a confirmation dialog), its signed-in devices (sign one out) and sign out (here or
 * everywhere). Changes that need a recent passkey check ask for it first (step-up).
 *
 * @module account
 */
import { busy, el, formatDate } from '/assets/dom.js';
import { providerName, renderPasskeys as renderPasskeyList } from '/assets/passkey-list.js';
import { continueUrl, els, explain, handoff, setStatus, showView, state } from '/assets/app.js';
import { stopTimer } from '/assets/cross-device.js';
import { showSignedOut } from '/assets/signin.js';
import { renderRecovery } from '/assets/recovery.js';

// ---- the account view ----------------------------------------------------------

export async function enterAccount(message) {
  try {
    state.session = await handoff.session();
  } catch (error) {
    setStatus(explain(error, 'signin'), 'error');
    return;
  }
  if (!state.session) {
    setStatus('Signing in did not stick: the server has no session for this browser. Are cookies blocked?', 'error');
    showSignedOut();
    return;
  }
  const next = continueUrl();
  if (next) {
    setStatus('Signed in. Returning to the application…', 'ok');
    location.assign(next);
    return;
  }
  renderAccount();
  els.signinForm.reset();
  els.signupForm.reset();
  if (message) setStatus(message, 'ok');
  els.accountTitle.focus();
}

export function renderAccount() {
  state.flow = null;
  stopTimer();
  showView(els.account);
  els.accountIdentifier.textContent = state.session.identifier;
  const name = state.session.displayName && state.session.displayName !== state.session.identifier ? state.session.displayName : '';
  els.accountName.textContent = name;
  els.accountNameWrap.hidden = !name;
  // API-DRAFT names it createdAt; accept accountCreatedAt too (see the e2e report).
  const created = state.session.createdAt ?? state.session.accountCreatedAt;
  els.accountSince.textContent = created ? `Account created ${formatDate(created)}` : '';
  renderPasskeys(state.session.passkeys ?? []);
  renderDevices();
  renderRecovery();
}

/** Signed-in devices (sessions) of this account, each with a way to sign it out. */
async function renderDevices() {
  let devices;
  try {
    devices = await handoff.devices();
  } catch {
    els.deviceList.replaceChildren(el('li', { class: 'empty', text: 'The list of signed-in devices could not be loaded.' }));
    return;
  }
  els.deviceList.replaceChildren(
    ...devices.map((d) => {
      const item = el('li', { class: 'passkey' });
      const what = [d.device?.browser, d.device?.os].filter((v) => v && v !== 'unknown').join(' on ') || 'Unknown device';
      item.append(el('strong', { text: d.current ? `${what} (this browser)` : what }));
      item.append(el('p', { class: 'hint', text: `Signed in ${formatDate(d.createdAt)}${d.ip ? ` from ${d.ip}` : ''}` }));
      if (!d.current) {
        const end = el('button', { class: 'button button-secondary', text: 'Sign out this device' });
        end.type = 'button';
        end.setAttribute('aria-label', `Sign out this device: ${what}, signed in ${formatDate(d.createdAt)}`);
        end.addEventListener('click', async () => {
          end.disabled = true;
          try {
            await handoff.withStepUp(() => handoff.endDevice(d.id), { onStepUp: askForPasskey });
            setStatus(`Signed out ${what}.`, 'ok');
          } catch (error) {
            setStatus(explain(error, 'account'), 'error');
          }
          renderDevices();
        });
        item.append(end);
      }
      return item;
    }),
  );
}

function renderPasskeys(passkeys) {
  renderPasskeyList(els.passkeyList, els.passkeyEmpty, passkeys, { onDelete: confirmDelete });
}

async function refreshPasskeys() {
  const passkeys = await handoff.passkeys();
  if (state.session) state.session.passkeys = passkeys;
  renderPasskeys(passkeys);
}

/** Said before the passkey dialog of a step-up opens (PRODUCT §8). */
export function askForPasskey() {
  setStatus('For your safety, confirm it’s you with your passkey first.');
}

// ---- delete ------------------------------------------------------------------

function confirmDelete(passkey, count, trigger) {
  const provider = providerName(passkey.provider);
  const which = provider === 'Unknown passkey provider' ? 'this passkey' : `the passkey from ${provider}`;
  els.deleteText.textContent = `You won't be able to sign in with ${which} (created ${formatDate(passkey.createdAt)}) any more.`;
  els.deleteLast.hidden = count > 1;
  els.deleteDialog.returnValue = '';
  els.deleteDialog.showModal();
  els.deleteDialog.addEventListener(
    'close',
    async () => {
      if (els.deleteDialog.returnValue !== 'delete') {
        trigger.focus();
        return;
      }
      setStatus('Deleting the passkey…');
      try {
        await handoff.withStepUp(() => handoff.deletePasskey(passkey.credentialId), { onStepUp: askForPasskey });
        await refreshPasskeys();
        setStatus(`${which.charAt(0).toUpperCase()}${which.slice(1)} was deleted.`, 'ok');
      } catch (error) {
        setStatus(explain(error, 'delete'), 'error');
        if (error?.code === 'not-signed-in') return showSignedOut();
      }
      (els.passkeyList.querySelector('.passkey-delete') ?? els.addPasskey).focus();
    },
    { once: true },
  );
}

// ---- buttons -------------------------------------------------------------------

/** Wire the account's buttons (called once by app.js). */
export function setupAccount() {
  els.addPasskey.addEventListener('click', async () => {
    if (!state.session) return;
    const done = busy(els.addPasskey, 'Creating your passkey…');
    setStatus('Follow the instructions from your browser to create a passkey.');
    try {
      const result = await handoff.withStepUp(
        () => handoff.signUp({ identifier: state.session.identifier, displayName: state.session.displayName || undefined }),
        { onStepUp: askForPasskey },
      );
      await refreshPasskeys();
      const provider = result?.provider?.name;
      setStatus(
        provider && provider.toLowerCase() !== 'unknown' ? `Passkey added. It is saved in ${provider}.` : 'Passkey added.',
        'ok',
      );
    } catch (error) {
      setStatus(explain(error, 'add'), 'error');
      if (error?.code === 'not-signed-in') showSignedOut();
    } finally {
      done();
    }
  });

  els.signoutEverywhere.addEventListener('click', async () => {
    const done = busy(els.signoutEverywhere, 'Signing out everywhere…');
    try {
      const ended = await handoff.withStepUp(() => handoff.signOutEverywhere(), { onStepUp: askForPasskey });
      showSignedOut();
      setStatus(`Signed out everywhere (${ended} ${ended === 1 ? 'session' : 'sessions'} ended).`, 'ok');
      els.signinTitle.focus();
    } catch (error) {
      setStatus(explain(error, 'signout'), 'error');
    } finally {
      done();
    }
  });

  els.signout.addEventListener('click', async () => {
    const done = busy(els.signout, 'Signing out…');
    try {
      await handoff.signOut();
      showSignedOut();
      setStatus('You are signed out.', 'ok');
      // Focus the heading, not the input: focusing the input would pop the passkey autofill list at once.
      els.signinTitle.focus();
    } catch (error) {
      setStatus(explain(error, 'signout'), 'error');
    } finally {
      done();
    }
  });
}
