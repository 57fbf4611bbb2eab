/**
 * base64url and WebAuthn JSON encoding for the Handoff SDK.
 *
 * Why it exists: the server speaks the W3C JSON encodings of WebAuthn
 * (`PublicKeyCredentialRequestOptionsJSON`, `AuthenticationResponseJSON`, …). Browsers
 * that have `PublicKeyCredential.parse*OptionsFromJSON` and `credential.toJSON()` do the
 * conversion themselves; older Safari and Firefox do not, so this module turns the JSON
 * into the `ArrayBuffer`s WebAuthn wants and back, by hand, producing the same JSON. It is
 * kept apart from `handoff.js` because it is pure data conversion with no state and no
 * network, and it knows nothing of the SDK's errors: a malformed value throws an
 * {@link EncodingError} (code `bad-response`), which `handoff.js` turns into its own
 * `HandoffError`.
 *
 * @module encoding
 */

/** A value from the server could not be decoded. `code` is always `bad-response`. */
export class EncodingError extends Error {
  /**
   * @param {string} message
   * @param {{cause?: unknown}} [options]
   */
  constructor(message, options) {
    super(message, options);
    this.name = 'EncodingError';
    /** @type {'bad-response'} */
    this.code = 'bad-response';
  }
}

// ---- base64url ---------------------------------------------------------------

/**
 * Encode bytes as unpadded base64url.
 * @param {ArrayBuffer|ArrayBufferView} buffer
 * @returns {string}
 */
export function toBase64url(buffer) {
  const bytes =
    buffer instanceof ArrayBuffer ? new Uint8Array(buffer) : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * Decode base64url (padded or not; plain base64 is accepted too).
 * @param {string} text
 * @returns {ArrayBuffer}
 * @throws {EncodingError} when `text` is not a string or not base64
 */
export function fromBase64url(text) {
  if (typeof text !== 'string') throw new EncodingError('The server sent a malformed passkey option.');
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
  let binary;
  try {
    binary = atob(padded);
  } catch (error) {
    throw new EncodingError('The server sent a malformed passkey option.', { cause: error });
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

// ---- options: JSON → WebAuthn ------------------------------------------------

/** JSON `null` is never meaningful in WebAuthn options and trips WebIDL; drop it. */
function dropNulls(value) {
  if (Array.isArray(value)) return value.filter((v) => v !== null).map(dropNulls);
  if (value && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = dropNulls(v);
    return out;
  }
  return value;
}

function descriptorFromJSON(descriptor) {
  return { ...descriptor, id: fromBase64url(descriptor.id) };
}

/**
 * `PublicKeyCredentialCreationOptionsJSON` → options for `navigator.credentials.create`.
 * @param {object} json
 * @returns {PublicKeyCredentialCreationOptions}
 * @throws {EncodingError}
 */
export function parseCreationOptions(json) {
  if (!json || typeof json !== 'object') throw new EncodingError('The server sent no passkey options.');
  const clean = dropNulls(json);
  const PKC = globalThis.PublicKeyCredential;
  if (typeof PKC?.parseCreationOptionsFromJSON === 'function') {
    try {
      return PKC.parseCreationOptionsFromJSON(clean);
    } catch {
      // fall through to the hand-written decoder (it reports its own errors)
    }
  }
  const options = {
    ...clean,
    challenge: fromBase64url(clean.challenge),
    user: { ...clean.user, id: fromBase64url(clean.user?.id) },
  };
  if (clean.excludeCredentials) options.excludeCredentials = clean.excludeCredentials.map(descriptorFromJSON);
  return options;
}

/**
 * `PublicKeyCredentialRequestOptionsJSON` → options for `navigator.credentials.get`.
 * @param {object} json
 * @returns {PublicKeyCredentialRequestOptions}
 * @throws {EncodingError}
 */
export function parseRequestOptions(json) {
  if (!json || typeof json !== 'object') throw new EncodingError('The server sent no passkey options.');
  const clean = dropNulls(json);
  const PKC = globalThis.PublicKeyCredential;
  if (typeof PKC?.parseRequestOptionsFromJSON === 'function') {
    try {
      return PKC.parseRequestOptionsFromJSON(clean);
    } catch {
      // fall through to the hand-written decoder
    }
  }
  const options = { ...clean, challenge: fromBase64url(clean.challenge) };
  if (clean.allowCredentials) options.allowCredentials = clean.allowCredentials.map(descriptorFromJSON);
  return options;
}

// ---- results: WebAuthn → JSON ------------------------------------------------

/**
 * RegistrationResponseJSON for a credential from `navigator.credentials.create`.
 * @param {PublicKeyCredential} credential
 * @returns {object}
 */
export function registrationToJSON(credential) {
  if (typeof credential.toJSON === 'function') {
    try {
      const json = credential.toJSON();
      if (json?.response?.attestationObject) return json;
    } catch {
      // some extension-wrapped credentials lack a working toJSON; encode by hand
    }
  }
  const r = credential.response;
  const response = {
    clientDataJSON: toBase64url(r.clientDataJSON),
    attestationObject: toBase64url(r.attestationObject),
  };
  const transports = callOptional(r, 'getTransports');
  if (Array.isArray(transports)) response.transports = transports;
  const authenticatorData = callOptional(r, 'getAuthenticatorData');
  if (authenticatorData) response.authenticatorData = toBase64url(authenticatorData);
  const publicKey = callOptional(r, 'getPublicKey');
  if (publicKey) response.publicKey = toBase64url(publicKey);
  const publicKeyAlgorithm = callOptional(r, 'getPublicKeyAlgorithm');
  if (typeof publicKeyAlgorithm === 'number') response.publicKeyAlgorithm = publicKeyAlgorithm;
  return credentialJSON(credential, response);
}

/**
 * AuthenticationResponseJSON for a credential from `navigator.credentials.get`.
 * @param {PublicKeyCredential} credential
 * @returns {object}
 */
export function authenticationToJSON(credential) {
  if (typeof credential.toJSON === 'function') {
    try {
      const json = credential.toJSON();
      if (json?.response?.signature) return json;
    } catch {
      // encode by hand below
    }
  }
  const r = credential.response;
  const response = {
    clientDataJSON: toBase64url(r.clientDataJSON),
    authenticatorData: toBase64url(r.authenticatorData),
    signature: toBase64url(r.signature),
  };
  if (r.userHandle && r.userHandle.byteLength > 0) response.userHandle = toBase64url(r.userHandle);
  return credentialJSON(credential, response);
}

function credentialJSON(credential, response) {
  const json = {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    response,
    clientExtensionResults: buffersToBase64url(callOptional(credential, 'getClientExtensionResults') ?? {}),
  };
  if (credential.authenticatorAttachment) json.authenticatorAttachment = credential.authenticatorAttachment;
  return json;
}

function callOptional(target, method) {
  if (typeof target?.[method] !== 'function') return undefined;
  try {
    return target[method]();
  } catch {
    return undefined;
  }
}

/** Extension results can hold ArrayBuffers (prf, largeBlob); JSON carries them as base64url. */
function buffersToBase64url(value) {
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return toBase64url(value);
  if (Array.isArray(value)) return value.map(buffersToBase64url);
  if (value && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = buffersToBase64url(v);
    return out;
  }
  return value;
}
