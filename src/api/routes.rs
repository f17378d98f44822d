//! Every route of the API, in one table: the router is built from it and
//! a test holds it against `openapi.json`, so neither drifts.
//!
//! Handlers are thin: they parse what the request carries, then run c2's
//! own code on the blocking pool (it is synchronous, and a change must
//! run to its end even if the client goes away: a blocking task does).
//! Changes go through [`door::change`], as on the command line.

use axum::http::{header, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{Caller, Changer, PageReader, Reader};
use super::error::ApiError;
use super::extract::{Body, ChangeParams, Name, NoParams, Params};
use super::{page, views, App};
use crate::config::ToolConfig;
use crate::door::{self, Ask, Done};
use crate::journal::{self, By};
use crate::names::{DeployLabel, ReleaseName};
use crate::store::{self, ReleaseStore};
use crate::target::{self, Change, Status};

/// One route: its method, its path (axum's syntax, as in the OpenAPI
/// document), and its handler once told the method.
pub(crate) struct Route {
    pub method: Method,
    pub path: &'static str,
    handler: Box<dyn FnOnce(MethodFilter) -> MethodRouter<App>>,
}

impl Route {
    /// The handler, for this route's method only.
    pub(crate) fn serve(self) -> MethodRouter<App> {
        let filter = match self.method {
            Method::POST => MethodFilter::POST,
            Method::PUT => MethodFilter::PUT,
            Method::DELETE => MethodFilter::DELETE,
            _ => MethodFilter::GET,
        };
        (self.handler)(filter)
    }
}

fn route<H, T>(method: Method, path: &'static str, handler: H) -> Route
where
    H: axum::handler::Handler<T, App>,
    T: 'static,
{
    Route {
        method,
        path,
        handler: Box::new(move |filter| on(filter, handler)),
    }
}

/// Every route.
pub(crate) fn table() -> Vec<Route> {
    vec![
        route(Method::GET, "/healthz", healthz),
        route(Method::GET, "/openapi.json", openapi),
        route(Method::GET, "/", page),
        route(Method::GET, "/v1/status", status),
        route(Method::GET, "/v1/deploys", deploys),
        route(Method::POST, "/v1/deploys", start),
        route(Method::DELETE, "/v1/deploys/{label}", stop),
        route(Method::GET, "/v1/endpoints", endpoints),
        route(Method::PUT, "/v1/endpoints/{name}", connect),
        route(Method::DELETE, "/v1/endpoints/{name}", disconnect),
        route(
            Method::POST,
            "/v1/endpoints/{name}/rollback",
            rollback_endpoint,
        ),
        route(Method::POST, "/v1/rollback", rollback),
        route(Method::GET, "/v1/slaves", slaves),
        route(Method::GET, "/v1/releases", releases),
        route(Method::GET, "/v1/history", history),
        route(Method::GET, "/v1/lock", lock),
        route(Method::PUT, "/v1/lock", lock_acquire),
        route(Method::DELETE, "/v1/lock", lock_release),
    ]
}

/// The OpenAPI document, served as it is written.
pub(crate) const OPENAPI: &str = include_str!("openapi.json");

async fn healthz() -> &'static str {
    "ok"
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Runs `work` on the blocking pool, where c2's code belongs.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request failed inside c2; its log says more",
        )
    })?
}

/// Reads the status (with the slaves' reports, with remote state) and
/// makes something of it, all on the blocking pool.
async fn with_status<T: Send + 'static>(
    app: App,
    view: impl FnOnce(&ToolConfig, &Status) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    blocking(move || {
        let store = store::open(&app.config.releases);
        let target = target::open(&app.config, store.as_ref())?;
        let status = target.status(app.remote())?;
        view(&app.config, &status)
    })
    .await
}

async fn status(
    _: Reader,
    _: Params<NoParams>,
    app: axum::extract::State<App>,
) -> Result<Json<Value>, ApiError> {
    with_status(app.0, |_, status| Ok(Json(status.json()))).await
}

async fn deploys(
    _: Reader,
    _: Params<NoParams>,
    app: axum::extract::State<App>,
) -> Result<Json<Value>, ApiError> {
    with_status(app.0, |_, status| Ok(Json(json!(views::deploys(status))))).await
}

async fn endpoints(
    _: Reader,
    _: Params<NoParams>,
    app: axum::extract::State<App>,
) -> Result<Json<Value>, ApiError> {
    with_status(app.0, |_, status| Ok(Json(json!(views::endpoints(status))))).await
}

async fn slaves(
    _: Reader,
    _: Params<NoParams>,
    app: axum::extract::State<App>,
) -> Result<Json<Value>, ApiError> {
    with_status(app.0, |_, status| match status {
        Status::Proxy(shown) if shown.slaves.is_some() => Ok(Json(json!(views::slaves(
            shown,
            shown.slaves.as_deref().unwrap_or_default()
        )))),
        _ => Err(ApiError::bad_request(
            "slaves need remote state: set deployMode.proxy.remoteStateS3 in the config",
        )),
    })
    .await
}

async fn releases(
    _: Reader,
    _: Params<NoParams>,
    app: axum::extract::State<App>,
) -> Result<Json<Value>, ApiError> {
    let app = app.0;
    blocking(move || {
        let listed = store::open(&app.config.releases).list_dated()?;
        Ok(Json(json!(views::releases(&listed))))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryParams {
    limit: Option<usize>,
}

/// The most events one request may ask for.
const MAX_HISTORY: usize = 10_000;

async fn history(
    _: Reader,
    Params(params): Params<HistoryParams>,
    app: axum::extract::State<App>,
) -> Result<Json<Value>, ApiError> {
    let limit = params.limit.unwrap_or(20);
    if limit > MAX_HISTORY {
        return Err(ApiError::bad_request(format!(
            "limit {limit} is more than {MAX_HISTORY}"
        )));
    }
    let app = app.0;
    blocking(move || {
        let events = journal::open(&app.config).recent(limit)?;
        Ok(Json(json!(events)))
    })
    .await
}

async fn lock(
    _: Reader,
    _: Params<NoParams>,
    app: axum::extract::State<App>,
) -> Result<Json<Value>, ApiError> {
    let app = app.0;
    blocking(move || {
        let lock = journal::current_lock(journal::open(&app.config).as_ref())?;
        Ok(Json(json!(lock)))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LockBody {
    message: String,
}

async fn lock_acquire(
    Changer(caller): Changer,
    _: Params<NoParams>,
    app: axum::extract::State<App>,
    Body(body): Body<LockBody>,
) -> Result<Json<Value>, ApiError> {
    let app = app.0;
    blocking(move || {
        let journal = journal::open(&app.config);
        let by = By::Token(caller.name);
        let transition = journal::acquire(journal.as_ref(), &body.message, &by)?;
        let lock = transition.after["lock"].clone();
        journal::record(
            journal.as_ref(),
            &by,
            journal::acquire_words(&body.message),
            transition,
        );
        Ok(Json(lock))
    })
    .await
}

async fn lock_release(
    Changer(caller): Changer,
    _: Params<NoParams>,
    app: axum::extract::State<App>,
) -> Result<StatusCode, ApiError> {
    let app = app.0;
    blocking(move || {
        let journal = journal::open(&app.config);
        let transition = journal::release(journal.as_ref())?;
        let by = By::Token(caller.name);
        journal::record(journal.as_ref(), &by, journal::release_words(), transition);
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// A change as the API asks for it, owning its words until the door
/// borrows them.
enum Asked {
    Start {
        release: ReleaseName,
        label: DeployLabel,
    },
    Stop {
        label: String,
    },
    Connect {
        endpoint: String,
        label: String,
        force: bool,
    },
    Disconnect {
        endpoint: String,
    },
    Rollback {
        endpoint: Option<String>,
        force: bool,
    },
}

impl Asked {
    fn change(&self) -> Change<'_> {
        match self {
            Asked::Start { release, label } => Change::Start { release, label },
            Asked::Stop { label } => Change::Stop { label },
            Asked::Connect {
                endpoint,
                label,
                force,
            } => Change::Connect {
                endpoint,
                label,
                force: *force,
            },
            Asked::Disconnect { endpoint } => Change::Disconnect { endpoint },
            Asked::Rollback { endpoint, force } => Change::Rollback {
                endpoint: endpoint.as_deref(),
                force: *force,
            },
        }
    }
}

/// What a change answers once made: the changed object, or nothing.
type Answer = fn(&Status, &Asked) -> Option<Value>;

/// Makes the change through the one door; a dry run answers its actions,
/// a change made answers `made` (201) or what `answer` finds afterwards.
async fn make(
    app: App,
    caller: Caller,
    params: ChangeParams,
    asked: Asked,
    made: StatusCode,
    answer: Answer,
) -> Result<Response, ApiError> {
    let fleet = params.fleet()?;
    blocking(move || {
        let store = store::open(&app.config.releases);
        if !params.dry_run {
            refuse_a_stop_of_another_release(&app.config, store.as_ref(), &asked)?;
        }
        let ask = Ask {
            change: asked.change(),
            dry_run: params.dry_run,
            fleet,
            by: By::Token(caller.name),
        };
        match door::change(&app.config, store.as_ref(), &ask)? {
            Done::Planned(actions) => {
                Ok((StatusCode::OK, Json(json!({ "actions": actions }))).into_response())
            }
            Done::Made => {
                let target = target::open(&app.config, store.as_ref())?;
                let status = target.status(app.remote())?;
                Ok(match answer(&status, &asked) {
                    Some(value) => (made, Json(value)).into_response(),
                    None => StatusCode::NO_CONTENT.into_response(),
                })
            }
        }
    })
    .await
}

/// In noproxy mode `c2 stop NAME` stops the live release whatever NAME
/// is, as Camus2 did; over the API a name that is not the live release's
/// is refused instead, so that a bot cleaning up old names cannot take
/// the live release down.
fn refuse_a_stop_of_another_release(
    config: &ToolConfig,
    store: &dyn ReleaseStore,
    asked: &Asked,
) -> Result<(), ApiError> {
    let Asked::Stop { label } = asked else {
        return Ok(());
    };
    if config.proxy_mode().is_some() {
        return Ok(());
    }
    let target = target::open(config, store)?;
    if let Status::Noproxy { current, .. } = target.status(false)? {
        if current.as_deref() != Some(label.as_str()) {
            return Err(ApiError::not_found(format!(
                "no deploy called {label} (the live release is {})",
                current.as_deref().unwrap_or("none")
            )));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    release: String,
    label: Option<String>,
}

async fn start(
    Changer(caller): Changer,
    Params(params): Params<ChangeParams>,
    app: axum::extract::State<App>,
    Body(body): Body<StartBody>,
) -> Result<Response, ApiError> {
    let release = ReleaseName::parse(&body.release).map_err(bad)?;
    let label = match &body.label {
        Some(l) => DeployLabel::parse(l).map_err(bad)?,
        None => release.default_label().map_err(bad)?,
    };
    let asked = Asked::Start { release, label };
    make(
        app.0,
        caller,
        params,
        asked,
        StatusCode::CREATED,
        |status, asked| {
            let Asked::Start { label, .. } = asked else {
                return None;
            };
            match status {
                Status::Proxy(shown) => views::deploy(shown, label.as_str()),
                Status::Noproxy { .. } => views::deploys(status).into_iter().next(),
            }
        },
    )
    .await
}

async fn stop(
    Changer(caller): Changer,
    Name(label): Name,
    Params(params): Params<ChangeParams>,
    app: axum::extract::State<App>,
) -> Result<Response, ApiError> {
    let asked = Asked::Stop { label };
    make(app.0, caller, params, asked, StatusCode::OK, |_, _| None).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectBody {
    deploy: String,
    #[serde(default)]
    force: bool,
}

async fn connect(
    Changer(caller): Changer,
    Name(endpoint): Name,
    Params(params): Params<ChangeParams>,
    app: axum::extract::State<App>,
    Body(body): Body<ConnectBody>,
) -> Result<Response, ApiError> {
    let asked = Asked::Connect {
        endpoint,
        label: body.deploy,
        force: body.force,
    };
    make(
        app.0,
        caller,
        params,
        asked,
        StatusCode::OK,
        endpoint_answer,
    )
    .await
}

async fn disconnect(
    Changer(caller): Changer,
    Name(endpoint): Name,
    Params(params): Params<ChangeParams>,
    app: axum::extract::State<App>,
) -> Result<Response, ApiError> {
    let asked = Asked::Disconnect { endpoint };
    make(
        app.0,
        caller,
        params,
        asked,
        StatusCode::OK,
        endpoint_answer,
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    #[serde(default)]
    force: bool,
}

async fn rollback_endpoint(
    Changer(caller): Changer,
    Name(endpoint): Name,
    Params(params): Params<ChangeParams>,
    app: axum::extract::State<App>,
    Body(body): Body<RollbackBody>,
) -> Result<Response, ApiError> {
    let asked = Asked::Rollback {
        endpoint: Some(endpoint),
        force: body.force,
    };
    make(
        app.0,
        caller,
        params,
        asked,
        StatusCode::OK,
        endpoint_answer,
    )
    .await
}

/// Noproxy's rollback: answers the status (`current`, `previous`).
async fn rollback(
    Changer(caller): Changer,
    Params(params): Params<ChangeParams>,
    app: axum::extract::State<App>,
    Body(body): Body<RollbackBody>,
) -> Result<Response, ApiError> {
    let asked = Asked::Rollback {
        endpoint: None,
        force: body.force,
    };
    make(app.0, caller, params, asked, StatusCode::OK, |status, _| {
        Some(status.json())
    })
    .await
}

/// The endpoint a connect, disconnect or rollback changed.
fn endpoint_answer(status: &Status, asked: &Asked) -> Option<Value> {
    let endpoint = match asked {
        Asked::Connect { endpoint, .. } | Asked::Disconnect { endpoint } => endpoint.as_str(),
        Asked::Rollback {
            endpoint: Some(endpoint),
            ..
        } => endpoint.as_str(),
        _ => return None,
    };
    match status {
        Status::Proxy(shown) => views::endpoint(shown, endpoint),
        Status::Noproxy { .. } => None,
    }
}

/// A name that does not parse: the request's fault.
fn bad(e: anyhow::Error) -> ApiError {
    ApiError::bad_request(format!("{e:#}"))
}

async fn page(
    _: PageReader,
    _: Params<NoParams>,
    app: axum::extract::State<App>,
) -> Result<Html<String>, ApiError> {
    let app = app.0;
    blocking(move || page::render(&app).map(Html).map_err(ApiError::from)).await
}

/// Anything else: a 404 in the API's shape.
pub(crate) async fn no_route() -> ApiError {
    ApiError::not_found("no such route: GET /openapi.json lists them")
}

/// A known route asked with another method.
pub(crate) async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "that route does not take this method: GET /openapi.json lists them",
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The router and its document name the same routes, each once.
    #[test]
    fn the_openapi_document_describes_exactly_the_routes_served() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| {
                let methods = ops.as_object().unwrap().keys();
                methods.map(move |m| (m.to_uppercase(), path.clone()))
            })
            .collect();
        let table = table();
        let served: BTreeSet<(String, String)> = table
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        assert_eq!(served.len(), table.len(), "a route is in the table twice");
        assert_eq!(documented, served);
    }
}
