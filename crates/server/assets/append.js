/**
 * The demo page's offer after a sign-in with the phone, when the server says so
 * (`appendOffer`): "Create a passkey on this device?" — create one (then the account), or
 * "Not now" (the server then waits before offering again).
 *
 * @module append
 */
import { busy } from '/assets/dom.js';
import { els, explain, handoff, setStatus, showView, state } from '/assets/app.js';
import { askForPasskey, enterAccount } from '/assets/account.js';
import { showSignedOut } from '/assets/signin.js';

export function showAppendOffer() {
  els.appendWho.textContent = state.session?.identifier ?? '';
  els.appendWhoWrap.hidden = !state.session?.identifier;
  showView(els.appendOffer);
  setStatus('Signed in with your phone.', 'ok');
  els.appendTitle.focus();
}

/** Wire the offer's buttons (called once by app.js). */
export function setupAppend() {
  els.appendCreate.addEventListener('click', async () => {
    const done = busy(els.appendCreate, 'Creating your passkey…');
    els.appendSkip.disabled = true;
    setStatus('Follow the instructions from your browser to create a passkey on this device.');
    try {
      const result = await handoff.withStepUp(
        () => handoff.appendPasskey({ identifier: state.session?.identifier, displayName: state.session?.displayName || undefined }),
        { onStepUp: askForPasskey },
      );
      const provider = result?.provider?.name;
      await enterAccount(
        provider && provider.toLowerCase() !== 'unknown'
          ? `Passkey created on this device. It is saved in ${provider}. Next time, sign in here without your phone.`
          : 'Passkey created on this device. Next time, sign in here without your phone.',
      );
    } catch (error) {
      if (error?.code === 'not-signed-in') {
        showSignedOut();
        setStatus(explain(error, 'add'), 'error');
        return;
      }
      setStatus(explain(error, 'add'), 'error');
      els.appendTitle.focus();
    } finally {
      done();
      els.appendSkip.disabled = false;
    }
  });

  els.appendSkip.addEventListener('click', async () => {
    const done = busy(els.appendSkip, 'One moment…');
    try {
      await handoff.skipAppend();
    } catch {
      // Not remembering the "Not now" only means the offer may come back sooner; the person is signed in.
    } finally {
      done();
    }
    await enterAccount('Signed in with your phone. You can add a passkey for this device later from your account.');
  });
}
