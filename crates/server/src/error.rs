//! `ApiError`: the one place where domain errors and request-parsing failures become HTTP
//! statuses and the `{"error": {"code", "message"}}` body. Internal errors are logged
//! once here and reach the client as a generic sentence.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use handoff_core::{DomainError, ErrorCode};
use serde::Serialize;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
    tries_left: Option<u32>,
}

/// The error body.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine code, e.g. `ceremony-expired`.
    pub code: String,
    /// A sentence naming the problem.
    pub message: String,
    /// `code-wrong` only: how many more codes may be tried.
    #[serde(rename = "triesLeft", skip_serializing_if = "Option::is_none")]
    pub tries_left: Option<u32>,
}

impl ApiError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None, tries_left: None }
    }

    /// Adds a `Retry-After` header (seconds), for 429s.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 404 for unknown API paths.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "no such API endpoint")
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The sentence for the client.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Seconds to wait before trying again, for 429s and 503s that say so.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }
}

/// The status for each domain error code.
pub fn status_of(err: &DomainError) -> StatusCode {
    match err {
        DomainError::Invalid { .. } | DomainError::Verification(_) => StatusCode::BAD_REQUEST,
        DomainError::IdentifierTaken | DomainError::CredentialExists => StatusCode::CONFLICT,
        DomainError::NotSignedIn | DomainError::UnknownCredential => StatusCode::UNAUTHORIZED,
        DomainError::CounterRegression
        | DomainError::ProviderNotAllowed(_)
        | DomainError::QrWrongAccount
        | DomainError::QrFarApart => StatusCode::FORBIDDEN,
        DomainError::CeremonyNotFound | DomainError::PasskeyNotFound => StatusCode::NOT_FOUND,
        DomainError::CeremonyExpired | DomainError::QrExpired | DomainError::DeviceCodeExpired => StatusCode::GONE,
        DomainError::QrNotFound | DomainError::DeviceCodeNotFound => StatusCode::NOT_FOUND,
        DomainError::QrClaimedElsewhere
        | DomainError::QrWrongState(_)
        | DomainError::DeviceClaimedElsewhere
        | DomainError::DeviceWrongState(_) => StatusCode::CONFLICT,
        DomainError::WrongMatchCode
        | DomainError::WrongDeviceCode
        | DomainError::CodeWrong { .. }
        | DomainError::TooManyTries => StatusCode::BAD_REQUEST,
        DomainError::CodeExpired | DomainError::RecoveryLinkInvalid => StatusCode::GONE,
        DomainError::ReauthRequired => StatusCode::UNAUTHORIZED,
        DomainError::RedeemRefused => StatusCode::FORBIDDEN,
        DomainError::Storage(_) | DomainError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        let status = status_of(&err);
        if err.is_internal() {
            tracing::error!(error = %err, "internal error");
            return Self::new(status, "internal", "something went wrong on the server; it has been logged");
        }
        let mut api = Self::new(status, err.code(), err.to_string());
        if let DomainError::CodeWrong { tries_left } = err {
            api.tries_left = Some(tries_left);
        }
        api
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "send the body as JSON with Content-Type: application/json",
            ),
            JsonRejection::JsonSyntaxError(e) => Self::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                format!("the body is not valid JSON: {}", e.body_text()),
            ),
            JsonRejection::JsonDataError(e) => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid-field",
                e.body_text().replace("Failed to deserialize the JSON body into the target type: ", ""),
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                format!("the body is larger than {} bytes", crate::api::MAX_BODY_BYTES),
            ),
            other => Self::new(other.status(), "unreadable-body", other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid-path", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid-query", rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail { code: self.code.to_owned(), message: self.message, tries_left: self.tries_left },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use handoff_core::error::VerificationFailure;

    #[test]
    fn statuses_follow_the_domain() {
        let cases = [
            (DomainError::invalid("invalid-identifier", "x"), 400, "invalid-identifier"),
            (DomainError::IdentifierTaken, 409, "identifier-taken"),
            (DomainError::NotSignedIn, 401, "not-signed-in"),
            (DomainError::CeremonyNotFound, 404, "ceremony-not-found"),
            (DomainError::CeremonyExpired, 410, "ceremony-expired"),
            (DomainError::Verification(VerificationFailure::OriginMismatch), 400, "origin-mismatch"),
            (DomainError::UnknownCredential, 401, "unknown-credential"),
            (DomainError::CounterRegression, 403, "counter-regression"),
            (DomainError::PasskeyNotFound, 404, "passkey-not-found"),
        ];
        for (err, status, code) in cases {
            let api = ApiError::from(err);
            assert_eq!((api.status().as_u16(), api.code()), (status, code));
        }
    }

    #[test]
    fn internal_errors_hide_their_details() {
        let api = ApiError::from(DomainError::Storage("password=hunter2".into()));
        assert_eq!(api.status().as_u16(), 500);
        assert!(!api.message.contains("hunter2"));
    }
}
