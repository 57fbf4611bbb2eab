// A minimal software passkey for the token-endpoint benchmark's setup (never measured):
// navigator.credentials.create() for one ES256 key, "none" attestation, user present and user
// verified, answering the PublicKeyCredentialCreationOptionsJSON a server sends with the
// RegistrationResponseJSON a browser would post back (the shape the `passkey` crate's client
// produces for handoff-loadgen). Used by session.mjs to sign up once and get a session cookie.

import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';

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

/**
 * Creates a passkey for `publicKey` (creation options JSON) as a browser at `origin` would.
 * Returns { credential (RegistrationResponseJSON), privateKey, credentialId }.
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
    createHash('sha256').update(rpId).digest(),
    // UP | UV | BE | BS | AT: a user-verified, synced (backed-up) passkey.
    Buffer.from([0x01 | 0x04 | 0x08 | 0x10 | 0x40]),
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
