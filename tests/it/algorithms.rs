//! The signature algorithms registration offers, each verified end to end: a passkey made
//! with an EdDSA (Ed25519) or RS256 key registers and then signs in. The software
//! authenticator the other tests use makes ES256 keys only, so these tests build the
//! authenticator's side by hand (authenticator data, COSE key, `none` attestation) and sign
//! with real Ed25519 and RSA keys.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ciborium::Value as Cbor;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::on_both_backends;
use crate::support::TestApp;
use crate::support::app::{expect_error, json_ok};

/// A credential key of one algorithm.
enum Key {
    Ed25519(ed25519_dalek::SigningKey),
    Rs256(Box<rsa::pkcs1v15::SigningKey<Sha256>>, rsa::RsaPublicKey),
}

impl Key {
    fn ed25519() -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap();
        Self::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    fn rs256() -> Self {
        let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let public = private.to_public_key();
        Self::Rs256(Box::new(rsa::pkcs1v15::SigningKey::<Sha256>::new(private)), public)
    }

    /// COSE_Key (RFC 9053): OKP/Ed25519 with alg -8, or RSA with alg -257.
    fn cose(&self) -> Vec<u8> {
        use rsa::traits::PublicKeyParts;
        let int = |i: i64| Cbor::Integer(i.into());
        let map = match self {
            Self::Ed25519(k) => vec![
                (int(1), int(1)),
                (int(3), int(-8)),
                (int(-1), int(6)),
                (int(-2), Cbor::Bytes(k.verifying_key().to_bytes().to_vec())),
            ],
            Self::Rs256(_, public) => vec![
                (int(1), int(3)),
                (int(3), int(-257)),
                (int(-1), Cbor::Bytes(public.n().to_bytes_be())),
                (int(-2), Cbor::Bytes(public.e().to_bytes_be())),
            ],
        };
        let mut out = Vec::new();
        ciborium::into_writer(&Cbor::Map(map), &mut out).unwrap();
        out
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        use ed25519_dalek::Signer as _;
        use rsa::signature::{SignatureEncoding as _, Signer as _};
        match self {
            Self::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
            Self::Rs256(k, _) => k.sign(message).to_vec(),
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn client_data(kind: &str, options: &Value, origin: &str) -> Vec<u8> {
    let challenge = options["challenge"].as_str().unwrap();
    json!({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false}).to_string().into_bytes()
}

/// rpIdHash ‖ flags ‖ signCount, then (at registration) the attested credential data.
fn authenticator_data(flags: u8, counter: u32, attested: Option<(&[u8], &[u8])>) -> Vec<u8> {
    let mut data = Sha256::digest(b"localhost").to_vec();
    data.push(flags);
    data.extend_from_slice(&counter.to_be_bytes());
    if let Some((credential_id, cose)) = attested {
        data.extend_from_slice(&[0u8; 16]);
        data.extend_from_slice(&u16::try_from(credential_id.len()).unwrap().to_be_bytes());
        data.extend_from_slice(credential_id);
        data.extend_from_slice(cose);
    }
    data
}

const UP_UV: u8 = 0x01 | 0x04;
const ATTESTED: u8 = 0x40;

async fn sign_up_and_in(app: &TestApp, key: &Key, alg: i64, identifier: &str) {
    let origin = app.origin.as_str().trim_end_matches('/');
    let start = json_ok(app.registration_start(identifier).await).await;
    let options = &start["publicKey"];
    let offered: Vec<i64> =
        options["pubKeyCredParams"].as_array().unwrap().iter().map(|p| p["alg"].as_i64().unwrap()).collect();
    assert!(offered.contains(&alg), "alg {alg} offered: {offered:?}");
    let credential_id: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(7).wrapping_add(alg as u8)).collect();
    let auth_data = authenticator_data(UP_UV | ATTESTED, 0, Some((&credential_id, &key.cose())));
    let mut attestation = Vec::new();
    let object = Cbor::Map(vec![
        (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
        (Cbor::Text("attStmt".into()), Cbor::Map(vec![])),
        (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
    ]);
    ciborium::into_writer(&object, &mut attestation).unwrap();
    let registration = json!({
        "id": b64(&credential_id),
        "rawId": b64(&credential_id),
        "type": "public-key",
        "response": {
            "clientDataJSON": b64(&client_data("webauthn.create", options, origin)),
            "attestationObject": b64(&attestation),
            "transports": ["internal"],
        },
        "authenticatorAttachment": "platform",
        "clientExtensionResults": {},
    });
    let done = json_ok(app.registration_finish(start["ceremonyId"].as_str().unwrap(), &registration).await).await;
    let user_handle = options["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(done["credentialId"], b64(&credential_id), "{done}");

    // Sign in identifier-first with the same key.
    let assertion = |start: &Value, counter: u32, tamper: bool| {
        let options = &start["publicKey"];
        let client = client_data("webauthn.get", options, origin);
        let auth_data = authenticator_data(UP_UV, counter, None);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client));
        let mut signature = key.sign(&signed);
        if tamper {
            let last = signature.len() - 1;
            signature[last] ^= 0x01;
        }
        json!({
            "id": b64(&credential_id),
            "rawId": b64(&credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client),
                "authenticatorData": b64(&auth_data),
                "signature": b64(&signature),
                "userHandle": user_handle,
            },
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        })
    };
    let start = json_ok(app.login_start(Some(identifier)).await).await;
    let allowed = start["publicKey"]["allowCredentials"].as_array().unwrap();
    assert_eq!(allowed[0]["id"], b64(&credential_id));
    let signed_in =
        json_ok(app.login_finish(start["ceremonyId"].as_str().unwrap(), &assertion(&start, 1, false)).await).await;
    assert_eq!(signed_in["identifier"], identifier);

    // A signature that does not verify under this key is refused.
    let start = json_ok(app.login_start(Some(identifier)).await).await;
    let refused = app.login_finish(start["ceremonyId"].as_str().unwrap(), &assertion(&start, 2, true)).await;
    expect_error(refused, 400, "invalid-signature").await;
}

on_both_backends!(an_eddsa_passkey_registers_and_signs_in, |backend| async move {
    let app = TestApp::spawn(backend).await;
    sign_up_and_in(&app, &Key::ed25519(), -8, "eddsa@example.com").await;
});

on_both_backends!(an_rs256_passkey_registers_and_signs_in, |backend| async move {
    let app = TestApp::spawn(backend).await;
    sign_up_and_in(&app, &Key::rs256(), -257, "rs256@example.com").await;
});
