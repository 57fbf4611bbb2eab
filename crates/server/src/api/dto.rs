//! Request and response bodies of the API (camelCase JSON), with their OpenAPI schemas.
//! WebAuthn options and responses are the W3C JSON encodings, passed through as objects.

use handoff_core::clock::rfc3339;
use handoff_core::decision::Decision;
use handoff_core::device::DeviceInfo;
use handoff_core::passkeys::PasskeyRecord;
use handoff_core::provider::ProviderCatalog;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /passkeys/registration/start`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationStartRequest {
    /// Email address or username (1–256 characters, no spaces). Case-insensitive.
    pub identifier: String,
    /// Name shown by authenticators; defaults to the identifier.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A ceremony to run in the browser.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CeremonyResponse {
    /// Pass back to the matching `finish`.
    pub ceremony_id: String,
    /// `PublicKeyCredentialCreationOptionsJSON` or `PublicKeyCredentialRequestOptionsJSON`.
    #[schema(value_type = Object)]
    pub public_key: serde_json::Value,
}

/// `POST …/finish`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FinishRequest {
    /// From `start`.
    pub ceremony_id: String,
    /// `RegistrationResponseJSON` or `AuthenticationResponseJSON` (W3C encoding).
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

/// A provider as shown to people.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderView {
    /// E.g. "iCloud Keychain"; "unknown" for unlisted AAGUIDs.
    pub name: String,
    /// The AAGUID.
    pub aaguid: String,
    /// Light-theme icon (data URI) when the operator loaded the community list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_light: Option<String>,
    /// Dark-theme icon (data URI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_dark: Option<String>,
}

impl ProviderView {
    /// The view of an AAGUID through the catalog.
    pub fn of(aaguid: &uuid::Uuid, catalog: &ProviderCatalog) -> Self {
        let p = catalog.lookup(aaguid);
        Self { name: p.name, aaguid: aaguid.to_string(), icon_light: p.icon_light, icon_dark: p.icon_dark }
    }
}

/// `POST /passkeys/registration/finish` response.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationFinishResponse {
    /// The account.
    pub user_id: String,
    /// The new passkey's id (base64url).
    pub credential_id: String,
    /// Who made the passkey.
    pub provider: ProviderView,
}

/// What the browser knows about itself (all optional; missing means unknown).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientEnvironment {
    /// `navigator.userAgent`.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// `PublicKeyCredential.getClientCapabilities()`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub capabilities: Option<serde_json::Value>,
    /// `isUserVerifyingPlatformAuthenticatorAvailable()`.
    #[serde(default)]
    pub platform_authenticator: Option<bool>,
    /// `isConditionalMediationAvailable()`.
    #[serde(default)]
    pub conditional_mediation: Option<bool>,
    /// The credential last used in this browser (first-party hint).
    #[serde(default)]
    pub last_credential_id: Option<String>,
    /// User-Agent Client Hints high-entropy values (`navigator.userAgentData.getHighEntropyValues`).
    #[serde(default)]
    pub user_agent_data: Option<UserAgentData>,
}

/// User-Agent Client Hints as the SDK read them (all optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserAgentData {
    /// `Windows`, `macOS`, `Android`, `iOS`, `Linux`, `Chrome OS`.
    #[serde(default)]
    pub platform: Option<String>,
    /// Platform version.
    #[serde(default)]
    pub platform_version: Option<String>,
    /// True on phones.
    #[serde(default)]
    pub mobile: Option<bool>,
    /// Device model (Android).
    #[serde(default)]
    pub model: Option<String>,
    /// `Desktop`, `Mobile`, `Tablet`, `XR`, …
    #[serde(default)]
    pub form_factors: Option<Vec<String>>,
}

/// `POST /login/start`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginStartRequest {
    /// For identifier-first sign-in; omit for usernameless / autofill.
    #[serde(default)]
    pub identifier: Option<String>,
    /// The journey this attempt continues, if any.
    #[serde(default)]
    pub journey_id: Option<String>,
    /// The browser's environment.
    #[serde(default)]
    pub client: Option<ClientEnvironment>,
    /// The method the page asks for after the previous one failed (the previous decision's
    /// `retry.then`); honoured when it can work, e.g. `cross-device` after a failed `try-once`.
    #[serde(default)]
    pub prefer: Option<handoff_core::decision::Verdict>,
}

/// `POST /login/start` response.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginStartResponse {
    /// The journey of this attempt.
    pub journey_id: String,
    /// Which method to offer, and why.
    pub decision: Decision,
    /// Present when the decision involves a passkey ceremony.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceremony_id: Option<String>,
    /// `PublicKeyCredentialRequestOptionsJSON`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub public_key: Option<serde_json::Value>,
}

/// `POST /login/finish` response.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginFinishResponse {
    /// The account signed in.
    pub user_id: String,
    /// Its identifier.
    pub identifier: String,
    /// The journey of this attempt.
    pub journey_id: String,
    /// The flow the sign-in took: `passkey-local` or `cross-device`.
    pub flow: String,
    /// Present when creating a passkey on this device is worth offering now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub append_offer: Option<handoff_core::passkeys::AppendOffer>,
}

/// `POST /login/failure`: a WebAuthn ceremony failed in the browser.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginFailureRequest {
    /// From `/login/start`.
    pub ceremony_id: String,
    /// The DOMException name, e.g. `NotAllowedError`.
    pub error_name: String,
    /// Milliseconds from `navigator.credentials.get` to the failure.
    #[serde(default)]
    pub elapsed_ms: Option<u64>,
}

/// A passkey and where it lives.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyView {
    /// base64url credential id.
    pub credential_id: String,
    /// Who made it.
    pub provider: ProviderView,
    /// Transports the browser reported at registration.
    pub transports: Vec<String>,
    /// `platform` or `cross-platform`, when known.
    pub authenticator_attachment: Option<String>,
    /// BE: the key may be synced.
    pub backup_eligible: bool,
    /// BS: the key is synced.
    pub backup_state: bool,
    /// RFC 3339.
    pub created_at: String,
    /// The device it was made on.
    pub created_on: DeviceInfo,
    /// RFC 3339, when it has been used.
    pub last_used_at: Option<String>,
    /// The device it was last used on.
    pub last_used_on: Option<DeviceInfo>,
}

impl PasskeyView {
    /// The view of a stored passkey.
    pub fn of(p: PasskeyRecord, catalog: &ProviderCatalog) -> Self {
        Self {
            credential_id: p.credential_id.to_base64url(),
            provider: ProviderView::of(&p.aaguid, catalog),
            transports: p.transports,
            authenticator_attachment: p.attachment,
            backup_eligible: p.backup_eligible,
            backup_state: p.backup_state,
            created_at: rfc3339(p.created_at),
            created_on: p.created_on,
            last_used_at: p.last_used_at.map(rfc3339),
            last_used_on: p.last_used_on,
        }
    }
}

/// `GET /passkeys`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyList {
    /// Oldest first.
    pub passkeys: Vec<PasskeyView>,
}

/// `GET /session`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionResponse {
    /// The account.
    pub user_id: String,
    /// Its identifier.
    pub identifier: String,
    /// Its display name.
    pub display_name: String,
    /// When the account was created (RFC 3339).
    pub account_created_at: String,
    /// When this session started (RFC 3339).
    pub signed_in_at: String,
    /// How this session was made: `passkey`, `cross-device` or `qr-approval`.
    pub method: handoff_core::passkeys::SessionMethod,
    /// True for a recovery session (PRODUCT §7).
    pub recovery: bool,
    /// Sensitive actions (adding or deleting a passkey, ending other sessions, approving
    /// a QR request) are allowed without a new passkey check until then (RFC 3339);
    /// absent when a passkey check on this device is needed first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_up_until: Option<String>,
    /// Adding a passkey on this device is allowed now without a new passkey check.
    pub may_add_passkey: bool,
    /// The account's passkeys.
    pub passkeys: Vec<PasskeyView>,
}
