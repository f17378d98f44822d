//! Who is asking: the token a request carries (`Authorization: Bearer
//! <token>`, or HTTP Basic with the token as password), checked against
//! the tokens file, and what its role lets it do. Each handler says what
//! it needs by the extractor it takes: [`Reader`], [`Changer`] or
//! [`PageReader`].

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use base64::Engine;

use super::error::ApiError;
use super::tokens::Role;
use super::App;

/// The token's name and role.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub name: String,
    pub role: Role,
}

/// Any valid token: it may read.
pub(crate) struct Reader;

/// A `deploy` token: it may change things.
pub(crate) struct Changer(pub Caller);

/// Any valid token, for the page: a 401 asks the browser for Basic.
pub(crate) struct PageReader;

const BEARER: &str = "Bearer realm=\"c2\"";
const BASIC: &str = "Basic realm=\"c2\", charset=\"UTF-8\"";

impl FromRequestParts<App> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        caller(parts, app, BEARER).map(|_| Reader)
    }
}

impl FromRequestParts<App> for PageReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        caller(parts, app, BASIC).map(|_| PageReader)
    }
}

impl FromRequestParts<App> for Changer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let caller = caller(parts, app, BEARER)?;
        if caller.role != Role::Deploy {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "token {} may only read: changes need a deploy token (c2 api-token add NAME --role deploy)",
                    caller.name
                ),
            ));
        }
        Ok(Changer(caller))
    }
}

/// The caller, or a 401 offering `challenge`.
fn caller(parts: &Parts, app: &App, challenge: &'static str) -> Result<Caller, ApiError> {
    let unauthorized = |message: &str| ApiError {
        status: StatusCode::UNAUTHORIZED,
        message: message.to_string(),
        challenge: Some(challenge),
    };
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "a token is needed: Authorization: Bearer <token> (c2 api-token add makes one)",
        ));
    };
    let token = value.to_str().ok().and_then(presented).ok_or_else(|| {
        unauthorized("the Authorization header is neither Bearer <token> nor Basic")
    })?;
    let tokens = app.tokens.load();
    match tokens.check(&token) {
        Some(entry) => Ok(Caller {
            name: entry.name.clone(),
            role: entry.role,
        }),
        // Never the token itself: it may be a real one, mistyped.
        None => Err(unauthorized("unknown token")),
    }
}

/// The token in an Authorization header's value.
fn presented(value: &str) -> Option<String> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let pair = String::from_utf8(decoded).ok()?;
        // Any user name: the password is the token.
        let (_, password) = pair.split_once(':')?;
        return Some(password.to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::presented;

    #[test]
    fn a_token_comes_as_bearer_or_as_the_basic_password() {
        assert_eq!(presented("Bearer c2_abc").as_deref(), Some("c2_abc"));
        assert_eq!(presented("bearer  c2_abc ").as_deref(), Some("c2_abc"));
        // "anyone:c2_abc"
        assert_eq!(
            presented("Basic YW55b25lOmMyX2FiYw==").as_deref(),
            Some("c2_abc")
        );
        assert_eq!(presented("Basic !!!"), None);
        assert_eq!(presented("Digest x"), None);
        assert_eq!(presented("c2_abc"), None);
    }
}
