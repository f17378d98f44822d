//! Errors as the API answers them: `{"error": "<the CLI's one-line
//! message>"}` with the status code of their cause.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::output::one_line;
use crate::refusal::{self, Why};

#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// `WWW-Authenticate`, on a 401.
    pub challenge: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            challenge: None,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

/// A failure of c2's own code: its cause decides the status, its message
/// is the command line's.
impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        let status = match refusal::why(&e) {
            Some(Why::NotFound) => StatusCode::NOT_FOUND,
            Some(Why::Conflict) => StatusCode::CONFLICT,
            Some(Why::Locked) => StatusCode::LOCKED,
            Some(Why::TimedOut) => StatusCode::GATEWAY_TIMEOUT,
            Some(Why::BadRequest) => StatusCode::BAD_REQUEST,
            None => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, format!("{e:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": one_line(&self.message) });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}
