// A minimal software passkey for the OIDC benchmarks:
// navigator.credentials.create() for one ES256 key, "none" attestation, user present and user
// verified, answering the PublicKeyCredentialCreationOptionsJSON a server sends with the
// RegistrationResponseJSON a browser would post back (the shape the `passkey` crate's client
// produces for handoff-loadgen), and navigator.credentials.get() with that key, answering
// PublicKeyCredentialRequestOptionsJSON with an AuthenticationResponseJSON. Used by session.mjs
// to sign up (and get a session cookie) and by signin.mjs to sign in.

import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';

const b64u = (buf) => Buffer.from(buf).toString('base64url');

// Just enough CBOR (RFC 8949) for an attestation object and a COSE key.
function head(major, n) {
  if (n < 24) return Buffer.from([(major << 5) | n]);
  if (n < 0x100) return Buffer.from([(major << 5) | 24, n]);
  if (n < 0x10000) return Buffer.from([(major << 5) | 25, n >> 8, n & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = (major << 5) | 26;
  b.writeUInt32BE(n, 1);
  return b;
}
function cbor(v) {
  if (Number.isInteger(v)) return v >= 0 ? head(0, v) : head(1, -1 - v);
  if (typeof v === 'string') {
    const s = Buffer.from(v, 'utf8');
    return Buffer.concat([head(3, s.length), s]);
  }
  if (Buffer.isBuffer(v)) return Buffer.concat([head(2, v.length), v]);
  if (v instanceof Map) {
    const parts = [head(5, v.size)];
    for (const [k, x] of v) parts.push(cbor(k), cbor(x));
    return Buffer.concat(parts);
  }
  throw new TypeError(`cbor: unsupported ${typeof v}`);
}

const sha256 = (x) => createHash('sha256').update(x).digest();

// Authenticator data flags: UP | UV | BE | BS, a user-verified, synced (backed-up) passkey.
// Assertions must carry the same BE bit as the registration (WebAuthn §6.1.3: backup
// eligibility never changes; webauthn-rs refuses a credential whose BE flips).
const FLAGS = 0x01 | 0x04 | 0x08 | 0x10;

/**
 * Creates a passkey for `publicKey` (creation options JSON) as a browser at `origin` would.
 * Returns { credential (RegistrationResponseJSON), privateKey, credentialId, rpId, userHandle }:
 * keep it whole, it is what getAssertion signs with.
 */
export function createCredential(publicKey, origin) {
  const algs = (publicKey.pubKeyCredParams || []).map((p) => p.alg);
  if (!algs.includes(-7)) throw new Error(`the server does not accept ES256 (-7): ${JSON.stringify(algs)}`);
  const rpId = publicKey.rp?.id || new URL(origin).hostname;
  const { publicKey: pub, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = pub.export({ format: 'jwk' });
  const credentialId = randomBytes(32);
  const coseKey = cbor(new Map([
    [1, 2], // kty: EC2
    [3, -7], // alg: ES256
    [-1, 1], // crv: P-256
    [-2, Buffer.from(jwk.x, 'base64url')],
    [-3, Buffer.from(jwk.y, 'base64url')],
  ]));
  const idLen = Buffer.alloc(2);
  idLen.writeUInt16BE(credentialId.length);
  const authData = Buffer.concat([
    sha256(rpId),
    Buffer.from([FLAGS | 0x40]), // … | AT: attested credential data follows

    Buffer.alloc(4), // signCount 0
    Buffer.alloc(16), // AAGUID (none)
    idLen,
    credentialId,
    coseKey,
  ]);
  const attestationObject = cbor(new Map([
    ['fmt', 'none'],
    ['attStmt', new Map()],
    ['authData', authData],
  ]));
  const clientDataJSON = Buffer.from(JSON.stringify({
    type: 'webauthn.create',
    challenge: publicKey.challenge,
    origin,
    crossOrigin: false,
  }));
  return {
    credentialId: b64u(credentialId),
    privateKey,
    rpId,
    userHandle: publicKey.user?.id,
    credential: {
      id: b64u(credentialId),
      rawId: b64u(credentialId),
      type: 'public-key',
      response: {
        clientDataJSON: b64u(clientDataJSON),
        attestationObject: b64u(attestationObject),
        transports: ['internal', 'hybrid'],
      },
      authenticatorAttachment: 'platform',
      clientExtensionResults: {},
    },
  };
}

/**
 * Signs in with `credential` (what createCredential returned) for `publicKey` (request options
 * JSON) as a browser at `origin` would: clientDataJSON of type webauthn.get, authenticator data
 * rpIdHash | flags (UP, UV and the registration's BE/BS) | signCount 0, and an ES256 signature
 * (DER, as WebAuthn carries it) over authenticatorData || SHA-256(clientDataJSON).
 * Returns the AuthenticationResponseJSON for login/finish.
 */
export function getAssertion(publicKey, origin, credential) {
  const rpId = publicKey.rpId || credential.rpId || new URL(origin).hostname;
  const allowed = publicKey.allowCredentials || [];
  if (allowed.length && !allowed.some((c) => c.id === credential.credentialId)) {
    throw new Error(`the credential ${credential.credentialId} is not in allowCredentials`);
  }
  const authenticatorData = Buffer.concat([sha256(rpId), Buffer.from([FLAGS]), Buffer.alloc(4)]);
  const clientDataJSON = Buffer.from(JSON.stringify({
    type: 'webauthn.get',
    challenge: publicKey.challenge,
    origin,
    crossOrigin: false,
  }));
  // node:crypto signs EC keys with a DER-encoded ECDSA signature by default.
  const signature = sign('sha256', Buffer.concat([authenticatorData, sha256(clientDataJSON)]), credential.privateKey);
  const response = {
    clientDataJSON: b64u(clientDataJSON),
    authenticatorData: b64u(authenticatorData),
    signature: b64u(signature),
  };
  if (credential.userHandle) response.userHandle = credential.userHandle;
  return {
    id: credential.credentialId,
    rawId: credential.credentialId,
    type: 'public-key',
    response,
    authenticatorAttachment: 'platform',
    clientExtensionResults: {},
  };
}
