//! The HTTP API: routes, request parsing, and how answers and errors are encoded.
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /runs[?input=name=value...]` | `201` `{"run", "events", "provenance"}`; `422` diagnostics |
//! | `GET /runs` | the newest runs in the store |
//! | `GET /runs/{id}` | the run and its steps |
//! | `GET /runs/{id}/events` | server-sent events, from the first, until `run-finished` |
//! | `GET /runs/{id}/provenance` | `{"run", "files": {"root.layout": ..., ...}}` |
//! | `GET /runs/{id}/verify` | `{"verified", "report"}` |
//! | `GET /healthz` | `ok` |

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use serde_json::json;
use tokio::sync::watch;

use crate::runs::LogState;
use crate::service::{Service, ServiceError};

/// The largest pipeline accepted.
pub const MAX_PIPELINE_BYTES: usize = 1 << 20;

/// How many runs `GET /runs` lists.
const LISTED_RUNS: usize = 100;

/// The service's routes.
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/runs", post(create_run).get(list_runs))
        .route("/runs/{id}", get(show_run))
        .route("/runs/{id}/events", get(run_events))
        .route("/runs/{id}/provenance", get(run_provenance))
        .route("/runs/{id}/verify", get(verify_run))
        .layer(DefaultBodyLimit::max(MAX_PIPELINE_BYTES))
        .with_state(service)
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let status = match &self {
            ServiceError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServiceError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ServiceError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
            ServiceError::Conflict(_) => StatusCode::CONFLICT,
            ServiceError::Gone(_) => StatusCode::GONE,
            ServiceError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ServiceError::Internal(error) => {
                tracing::error!("{error:#}");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let text = match &self {
            ServiceError::Internal(error) => format!("{error:#}\n"),
            other => format!("{}\n", other.to_string().trim_end()),
        };
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            text,
        )
            .into_response()
    }
}

/// Whether a body of this content type may be a pipeline: YAML, or any text.
fn is_pipeline_type(headers: &HeaderMap) -> Result<(), ServiceError> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = given
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let yaml = matches!(
        essence.as_str(),
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml"
    );
    if yaml || essence.starts_with("text/") {
        Ok(())
    } else {
        Err(ServiceError::UnsupportedMediaType(format!(
            "the body must be a pipeline, sent as `Content-Type: application/yaml` \
             (or any text/* type), not {}",
            if given.is_empty() {
                "without a type"
            } else {
                given
            }
        )))
    }
}

/// The pipeline inputs of `?input=name=value&input=...`.
fn inputs(query: Option<&str>) -> Result<Vec<(String, String)>, ServiceError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| ServiceError::BadRequest(format!("cannot read the query: {e}")))?;
    pairs
        .into_iter()
        .map(|(key, value)| {
            if key != "input" {
                return Err(ServiceError::BadRequest(format!(
                    "unknown query parameter `{key}`: give inputs as `?input=name=value`"
                )));
            }
            flow_engine::parse_input_arg(&value).map_err(ServiceError::BadRequest)
        })
        .collect()
}

/// `POST /runs`: load the posted pipeline, start it, and answer with where to follow it.
async fn create_run(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ServiceError> {
    is_pipeline_type(&headers)?;
    let inputs = inputs(query.as_deref())?;
    if !service.runs.accepting() {
        return Err(ServiceError::ShuttingDown);
    }
    let (pipeline, dir) = service.load(&body).await?;
    let run = service.start(pipeline, dir, inputs).await?;
    let location = format!("/runs/{run}");
    let body = json!({
        "run": run,
        "events": format!("{location}/events"),
        "provenance": format!("{location}/provenance"),
    });
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// `GET /runs`: the newest runs in the store.
async fn list_runs(State(service): State<Arc<Service>>) -> Result<Response, ServiceError> {
    let runs = service.store.runs(Some(LISTED_RUNS))?;
    Ok(Json(json!({ "runs": runs })).into_response())
}

/// `GET /runs/{id}`.
async fn show_run(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> Result<Response, ServiceError> {
    Ok(Json(service.view(&id)?).into_response())
}

/// `GET /runs/{id}/provenance`.
async fn run_provenance(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> Result<Response, ServiceError> {
    let files = blocking(move || service.provenance(&id).map(|files| (id, files))).await?;
    Ok(Json(json!({ "run": files.0, "files": files.1 })).into_response())
}

/// `GET /runs/{id}/verify`.
async fn verify_run(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> Result<Response, ServiceError> {
    Ok(Json(blocking(move || service.verify(&id)).await?).into_response())
}

/// Runs file and signature work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| anyhow::anyhow!("the task failed: {e}"))?
}

/// `GET /runs/{id}/events`: the run's events as server-sent events, each with its
/// position as its id (a client reconnecting with `Last-Event-ID` resumes after it),
/// from the first one, live, ending after `run-finished`.
async fn run_events(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ServiceError> {
    let Some(log) = service.runs.log(&id) else {
        // Known to the store, but not started by this process (or long finished).
        service.run_record(&id)?;
        return Err(ServiceError::Gone(format!(
            "the events of run {id} are no longer kept (the service keeps those of the \
             runs it started, while it runs); GET /runs/{id} has its record"
        )));
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(0, |last| last.saturating_add(1));
    let stream = events(log.subscribe(), resume);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// Where a reader of an event log is.
struct Cursor {
    log: watch::Receiver<LogState>,
    next: usize,
    done: bool,
}

/// The events of a log from position `from`, waiting for new ones, until the last.
fn events(
    log: watch::Receiver<LogState>,
    from: usize,
) -> impl Stream<Item = Result<sse::Event, Infallible>> + Send + 'static {
    let cursor = Cursor {
        log,
        next: from,
        done: false,
    };
    futures_util::stream::unfold(cursor, |mut cursor| async move {
        loop {
            if cursor.done {
                return None;
            }
            let entry = {
                let state = cursor.log.borrow_and_update();
                match state.entries.get(cursor.next) {
                    Some(entry) => Some(entry.clone()),
                    None if state.closed => return None,
                    None => None,
                }
            };
            if let Some(entry) = entry {
                let event = sse::Event::default()
                    .id(cursor.next.to_string())
                    .event(entry.kind)
                    .data(&entry.json);
                cursor.next += 1;
                cursor.done = entry.last;
                return Some((Ok(event), cursor));
            }
            if cursor.log.changed().await.is_err() {
                // The log itself is gone: nothing more can come.
                return None;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_come_from_repeated_input_parameters() {
        assert_eq!(
            inputs(Some("input=who%3Dflow&input=count=3")).unwrap(),
            [
                ("who".to_owned(), "flow".to_owned()),
                ("count".to_owned(), "3".to_owned())
            ]
        );
        assert!(inputs(None).unwrap().is_empty());
        assert!(matches!(
            inputs(Some("input=novalue")),
            Err(ServiceError::BadRequest(_))
        ));
        assert!(matches!(
            inputs(Some("who=flow")),
            Err(ServiceError::BadRequest(_))
        ));
    }

    #[test]
    fn a_pipeline_is_yaml_or_text() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            headers
        };
        assert!(is_pipeline_type(&with("application/yaml")).is_ok());
        assert!(is_pipeline_type(&with("Text/Plain; charset=utf-8")).is_ok());
        assert!(is_pipeline_type(&with("application/json")).is_err());
        assert!(is_pipeline_type(&HeaderMap::new()).is_err());
    }
}
