//! The provider's signing keys: ID tokens, and the sign-in proofs of PRODUCT §6.3, are JWS
//! signed with them; relying parties check them against the JWKS. Keys live in the
//! database (one RS256 and one ES256 key signing at a time), so every instance signs with
//! the same ones; JOSE is josekit over OpenSSL, which the build already has for WebAuthn
//! (`docs/decisions/0014-oidc-provider.md`). A rotated-out key stays published until what it
//! signed has expired.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use josekit::jwk::Jwk;
use josekit::jwk::alg::ec::EcCurve;
use josekit::jws::{ES256, JwsHeader, JwsSigner, JwsVerifier, RS256};
use josekit::jwt::{self, JwtPayload};
use serde_json::{Map, Value};

use crate::clock::{Clock, Millis};
use crate::error::{DomainError, Result};
use crate::storage::{SigningKeyRecord, SigningKeys};

/// A JWS algorithm Handoff signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (2048-bit keys): the OIDC default every client knows.
    #[serde(rename = "RS256")]
    Rs256,
    /// ECDSA P-256 with SHA-256: smaller and far cheaper to sign.
    #[serde(rename = "ES256")]
    Es256,
}

impl SigningAlg {
    /// Every algorithm, in the order discovery lists them.
    pub const ALL: [SigningAlg; 2] = [SigningAlg::Rs256, SigningAlg::Es256];

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }

    /// Parses a JOSE name.
    pub fn parse(raw: &str) -> Result<Self> {
        match raw {
            "RS256" => Ok(Self::Rs256),
            "ES256" => Ok(Self::Es256),
            other => Err(DomainError::invalid(
                "invalid-signing-alg",
                format!("signing algorithm {other:?} is not supported; use RS256 or ES256"),
            )),
        }
    }
}

fn jose(context: &str) -> impl FnOnce(josekit::JoseError) -> DomainError + '_ {
    move |e| DomainError::Internal(format!("{context}: {e}"))
}

/// One loaded key.
struct Loaded {
    kid: String,
    alg: SigningAlg,
    created_at: Millis,
    retired_at: Option<Millis>,
    public: Jwk,
    signer: Box<dyn JwsSigner>,
    verifier: Box<dyn JwsVerifier>,
}

impl Loaded {
    fn from_record(r: &SigningKeyRecord) -> Result<Self> {
        let pair = Jwk::from_bytes(r.private_jwk.as_bytes()).map_err(jose("stored signing key does not parse"))?;
        let mut public = pair.to_public_key().map_err(jose("public half of a signing key"))?;
        public.set_key_id(r.kid.clone());
        public.set_algorithm(r.alg.as_str());
        public.set_key_use("sig");
        let (signer, verifier): (Box<dyn JwsSigner>, Box<dyn JwsVerifier>) = match r.alg {
            SigningAlg::Rs256 => (
                Box::new(RS256.signer_from_jwk(&pair).map_err(jose("RS256 signer"))?),
                Box::new(RS256.verifier_from_jwk(&public).map_err(jose("RS256 verifier"))?),
            ),
            SigningAlg::Es256 => (
                Box::new(ES256.signer_from_jwk(&pair).map_err(jose("ES256 signer"))?),
                Box::new(ES256.verifier_from_jwk(&public).map_err(jose("ES256 verifier"))?),
            ),
        };
        Ok(Self {
            kid: r.kid.clone(),
            alg: r.alg,
            created_at: r.created_at,
            retired_at: r.retired_at,
            public,
            signer,
            verifier,
        })
    }
}

/// Generates a key pair for `alg` as a stored record.
pub fn generate(alg: SigningAlg, now: Millis) -> Result<SigningKeyRecord> {
    let mut kid_bytes = [0u8; 12];
    getrandom::fill(&mut kid_bytes).map_err(|e| DomainError::Internal(format!("random source failed: {e}")))?;
    let kid = format!(
        "{}-{}",
        alg.as_str().to_ascii_lowercase(),
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, kid_bytes)
    );
    let mut pair = match alg {
        SigningAlg::Rs256 => Jwk::generate_rsa_key(2048).map_err(jose("generating an RSA key"))?,
        SigningAlg::Es256 => Jwk::generate_ec_key(EcCurve::P256).map_err(jose("generating a P-256 key"))?,
    };
    pair.set_key_id(kid.clone());
    pair.set_algorithm(alg.as_str());
    pair.set_key_use("sig");
    Ok(SigningKeyRecord { kid, alg, private_jwk: pair.to_string(), created_at: now, retired_at: None })
}

/// The signing keys, loaded from storage and cached; reloaded every [`RELOAD_EVERY`] (so a
/// rotation made by another instance or by `handoff keys rotate` is seen) and at once after
/// a rotation made here.
#[derive(Clone)]
pub struct KeyRing {
    storage: Arc<dyn SigningKeys>,
    clock: Clock,
    /// How long after retirement a key stays published: the longest a token it signed lives.
    publish_after_retirement: Duration,
    cache: Arc<RwLock<Cache>>,
}

#[derive(Default)]
struct Cache {
    loaded_at: Millis,
    keys: Vec<Arc<Loaded>>,
}

/// How often the cache is read again from storage.
pub const RELOAD_EVERY: Millis = 30_000;

/// A signed JWT and what signed it.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The compact JWS.
    pub token: String,
    /// The key id.
    pub kid: String,
}

impl KeyRing {
    /// A key ring over `storage`; retired keys stay published for `publish_after_retirement`.
    pub fn new(storage: Arc<dyn SigningKeys>, clock: Clock, publish_after_retirement: Duration) -> Self {
        Self { storage, clock, publish_after_retirement, cache: Arc::default() }
    }

    /// Makes sure one key of each algorithm signs (generating what is missing: the first
    /// start), and loads them.
    pub async fn ensure(&self) -> Result<()> {
        let stored = self.storage.signing_keys().await?;
        for alg in SigningAlg::ALL {
            if !stored.iter().any(|k| k.alg == alg && k.retired_at.is_none()) {
                let now = self.clock.now_ms();
                let record = tokio::task::spawn_blocking(move || generate(alg, now))
                    .await
                    .map_err(|e| DomainError::Internal(format!("key generation task: {e}")))??;
                self.storage.add_signing_key(&record).await?;
                tracing::info!(kid = %record.kid, alg = alg.as_str(), "generated a signing key");
            }
        }
        self.reload().await
    }

    /// Adds a new key for each algorithm and retires the ones signing now (they stay in
    /// the JWKS until what they signed has expired). Returns the new key ids.
    pub async fn rotate(&self) -> Result<Vec<String>> {
        let now = self.clock.now_ms();
        let mut kids = Vec::new();
        for alg in SigningAlg::ALL {
            let record = tokio::task::spawn_blocking(move || generate(alg, now))
                .await
                .map_err(|e| DomainError::Internal(format!("key generation task: {e}")))??;
            self.storage.rotate_signing_key(&record, now).await?;
            tracing::info!(kid = %record.kid, alg = alg.as_str(), "rotated the signing key");
            kids.push(record.kid);
        }
        self.reload().await?;
        Ok(kids)
    }

    /// Reads the keys from storage again.
    pub async fn reload(&self) -> Result<()> {
        let now = self.clock.now_ms();
        let keep_since =
            now.saturating_sub(i64::try_from(self.publish_after_retirement.as_millis()).unwrap_or(i64::MAX));
        let stored = self.storage.signing_keys().await?;
        let mut keys = Vec::with_capacity(stored.len());
        for record in stored.iter().filter(|k| k.retired_at.is_none_or(|at| at > keep_since)) {
            keys.push(Arc::new(Loaded::from_record(record)?));
        }
        let mut cache = self.cache.write().map_err(|_| DomainError::Internal("key cache poisoned".into()))?;
        *cache = Cache { loaded_at: now, keys };
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<Arc<Loaded>>> {
        let now = self.clock.now_ms();
        let fresh = {
            let cache = self.cache.read().map_err(|_| DomainError::Internal("key cache poisoned".into()))?;
            (now.saturating_sub(cache.loaded_at) < RELOAD_EVERY && !cache.keys.is_empty()).then(|| cache.keys.clone())
        };
        match fresh {
            Some(keys) => Ok(keys),
            None => {
                self.reload().await?;
                let cache = self.cache.read().map_err(|_| DomainError::Internal("key cache poisoned".into()))?;
                Ok(cache.keys.clone())
            }
        }
    }

    /// The public keys to publish (`jwks_uri`), newest first.
    pub async fn jwks(&self) -> Result<Value> {
        let mut keys = self.keys().await?;
        keys.sort_by_key(|k| std::cmp::Reverse(k.created_at));
        let list: Vec<Value> = keys.iter().map(|k| Value::Object(k.public.as_ref().clone())).collect();
        Ok(serde_json::json!({ "keys": list }))
    }

    /// Signs `claims` as a JWT with the current key of `alg`, typed `typ`.
    pub async fn sign(&self, alg: SigningAlg, typ: &str, claims: Map<String, Value>) -> Result<Signed> {
        let keys = self.keys().await?;
        let key = keys
            .iter()
            .filter(|k| k.alg == alg && k.retired_at.is_none())
            .max_by_key(|k| k.created_at)
            .ok_or_else(|| DomainError::Internal(format!("no {} signing key", alg.as_str())))?;
        let mut header = JwsHeader::new();
        header.set_token_type(typ);
        header.set_key_id(key.kid.clone());
        let payload = JwtPayload::from_map(claims).map_err(jose("claims"))?;
        let token = jwt::encode_with_signer(&payload, &header, key.signer.as_ref()).map_err(jose("signing"))?;
        Ok(Signed { token, kid: key.kid.clone() })
    }

    /// The claims and `typ` of a JWT one of the published keys signed (expiry is not
    /// checked here: the caller decides what a token's age means). `None` when the
    /// signature does not verify, the key is unknown or the text is not a JWT.
    pub async fn verify(&self, token: &str) -> Result<Option<(Map<String, Value>, Option<String>)>> {
        if token.len() > 16 * 1024 {
            return Ok(None);
        }
        let keys = self.keys().await?;
        let decoded = jwt::decode_with_verifier_selector(token, |header| {
            let kid = header.key_id();
            let alg = header.algorithm();
            Ok(keys
                .iter()
                .find(|k| Some(k.kid.as_str()) == kid && Some(k.alg.as_str()) == alg)
                .map(|k| k.verifier.as_ref()))
        });
        Ok(decoded.ok().map(|(payload, header)| (payload.claims_set().clone(), header.token_type().map(str::to_owned))))
    }
}

/// The claims of a JWT signed by one of the keys of a published JWK set (RS256 or ES256),
/// for clients of a provider (the `handoff device-login` demo checks its ID token so).
/// `None` when no key of the set verifies it.
pub fn verify_with_jwks(token: &str, jwks: &Value) -> Option<Map<String, Value>> {
    let keys = jwks.get("keys")?.as_array()?;
    let verifiers: Vec<(Option<String>, String, Box<dyn JwsVerifier>)> = keys
        .iter()
        .filter_map(|k| {
            let jwk = Jwk::from_map(k.as_object()?.clone()).ok()?;
            let alg = k.get("alg").and_then(Value::as_str)?.to_owned();
            let verifier: Box<dyn JwsVerifier> = match alg.as_str() {
                "RS256" => Box::new(RS256.verifier_from_jwk(&jwk).ok()?),
                "ES256" => Box::new(ES256.verifier_from_jwk(&jwk).ok()?),
                _ => return None,
            };
            Some((jwk.key_id().map(str::to_owned), alg, verifier))
        })
        .collect();
    let (payload, _) = jwt::decode_with_verifier_selector(token, |header| {
        Ok(verifiers
            .iter()
            .find(|(kid, alg, _)| kid.as_deref() == header.key_id() && Some(alg.as_str()) == header.algorithm())
            .map(|(_, _, v)| v.as_ref()))
    })
    .ok()?;
    Some(payload.claims_set().clone())
}

/// Seconds since the epoch of a time in milliseconds, as JWT numeric dates are.
pub fn seconds(at: Millis) -> i64 {
    at.div_euclid(1000)
}

/// `SystemTime` of a time in milliseconds.
pub fn system_time(at: Millis) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(at).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_and_verify() {
        for alg in SigningAlg::ALL {
            let record = generate(alg, 1).unwrap();
            let loaded = Loaded::from_record(&record).unwrap();
            assert_eq!(loaded.public.parameter("d"), None, "the public JWK holds no private part");
            assert_eq!(loaded.public.key_id(), Some(record.kid.as_str()));
            assert_eq!(loaded.public.algorithm(), Some(alg.as_str()));
            let mut header = JwsHeader::new();
            header.set_key_id(loaded.kid.clone());
            let mut payload = JwtPayload::new();
            payload.set_subject("someone");
            let token = jwt::encode_with_signer(&payload, &header, loaded.signer.as_ref()).unwrap();
            let (back, _) = jwt::decode_with_verifier(&token, loaded.verifier.as_ref()).unwrap();
            assert_eq!(back.subject(), Some("someone"));
            assert_eq!(SigningAlg::parse(alg.as_str()).unwrap(), alg);
        }
        assert!(SigningAlg::parse("HS256").is_err());
    }
}
