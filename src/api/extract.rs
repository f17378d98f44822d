//! What a request carries besides its token, parsed at the edge into
//! types: a JSON body (and only JSON: a form from another site cannot
//! make a change), query parameters, a name in the path. Whatever does not
//! parse is a 400 (415, 413, 408) in the API's own error shape.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::ApiError;
use super::App;
use crate::door::Wait;

/// The longest a client may take to send a body (its headers have 10 s).
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// A JSON body, declared as such; an empty one reads as `{}`. Every route
/// that takes one is a POST or a PUT: the methods a page on another site
/// can send without asking first, but never with this content type.
pub(crate) struct Body<T>(pub T);

impl<T: DeserializeOwned> FromRequest<App> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &App) -> Result<Self, ApiError> {
        let declared = req.headers().get(header::CONTENT_TYPE);
        if !declared.is_some_and(|v| is_json(v.to_str().unwrap_or(""))) {
            return Err(unsupported());
        }
        let bytes = match tokio::time::timeout(BODY_TIMEOUT, Bytes::from_request(req, app)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(rejection)) => {
                return Err(ApiError::new(rejection.status(), rejection.body_text()))
            }
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body did not arrive in time",
                ))
            }
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return parse(b"{}").map(Body);
        }
        parse(&bytes).map(Body)
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body: {e}")))
}

fn unsupported() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "a change takes a JSON body: Content-Type: application/json",
    )
}

/// `application/json`, with parameters (`; charset=utf-8`) or not.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Query parameters; an unknown one is a 400, so that a mistyped
/// `?dryrun=true` cannot make the change it meant to preview.
pub(crate) struct Params<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<App> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &App) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(params)| Params(params))
            .map_err(|e| ApiError::bad_request(format!("the query: {}", e.body_text())))
    }
}

/// One name in the path: a deploy label or an endpoint.
pub(crate) struct Name(pub String);

impl FromRequestParts<App> for Name {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, app)
            .await
            .map(|Path(name)| Name(name))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// The parameters every change takes.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ChangeParams {
    /// Say what would be done, and change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// With remote state: wait for the fleet, as `--await-slaves`.
    #[serde(default, rename = "await")]
    pub wait: bool,
    pub min_slaves: Option<usize>,
    pub timeout: Option<String>,
}

impl ChangeParams {
    /// `--await-slaves [--min-slaves N] [--timeout D]`, with the command
    /// line's defaults and bounds.
    pub(crate) fn fleet(&self) -> Result<Option<Wait>, ApiError> {
        if !self.wait {
            if self.min_slaves.is_some() || self.timeout.is_some() {
                return Err(ApiError::bad_request(
                    "minSlaves and timeout go with await=true",
                ));
            }
            return Ok(None);
        }
        let timeout = match &self.timeout {
            None => Duration::from_secs(600),
            Some(text) => crate::cli::parse_wait(text)
                .map_err(|e| ApiError::bad_request(format!("timeout: {e}")))?,
        };
        Ok(Some(Wait {
            min_slaves: self.min_slaves.unwrap_or(1),
            timeout,
        }))
    }
}

/// The parameters of reads: none.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoParams {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_json_whatever_its_parameters() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json("application/jsonp"));
    }

    #[test]
    fn await_parameters_follow_the_command_line() {
        let p = ChangeParams {
            wait: true,
            ..Default::default()
        };
        let w = p.fleet().unwrap().unwrap();
        assert_eq!((w.min_slaves, w.timeout), (1, Duration::from_secs(600)));
        let alone = ChangeParams {
            min_slaves: Some(2),
            ..Default::default()
        };
        assert!(alone.fleet().is_err());
        let huge = ChangeParams {
            wait: true,
            timeout: Some("500000000000y".into()),
            ..Default::default()
        };
        assert!(huge.fleet().is_err());
    }
}
