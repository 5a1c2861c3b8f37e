//! The HTTP side of `flow serve`: where it listens (loopback unless told
//! otherwise), the routes, and the JSON endpoints. Read-only: GET (and HEAD) only.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use flow_engine::report::Verdict;
use flow_engine::stats::Stats;
use flow_store::{RunId, Store};
use serde_json::{Value, json};

use super::html::message_page;
use super::pages;
use super::query::{Filter, PER_PAGE};
use super::snapshot::{Access, Data, RunEntry, View};

/// How `flow serve` was asked to listen.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub addr: SocketAddr,
    /// Listen on an address other than loopback.
    pub allow_remote: bool,
}

/// Why the dashboard could not start.
#[derive(Debug)]
pub(crate) enum ServeError {
    /// The user's input (an address refused).
    Invalid(String),
    /// The system's (the address is taken...).
    Io(String),
}

/// Computes a run page's provenance verdict (as `flow report` does).
pub(crate) type Verify = Arc<dyn Fn(&Store, &RunId) -> Verdict + Send + Sync>;

/// How often the data dir is looked at.
const TICK: Duration = Duration::from_secs(1);

/// Only scripts and styles inline, and requests to this origin.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

struct App {
    data: Data,
    dir: String,
    verify: Verify,
    allow_remote: bool,
}

/// Serves the dashboard of `dir` until interrupted (Ctrl-C, SIGTERM).
pub(crate) async fn serve(
    dir: PathBuf,
    options: Options,
    verify: Verify,
) -> Result<(), ServeError> {
    if !options.addr.ip().is_loopback() && !options.allow_remote {
        return Err(ServeError::Invalid(format!(
            "{} is not a loopback address: the dashboard has no authentication, and shows \
             every run's logs, inputs and outputs to anyone who can reach it; pass \
             --allow-remote to serve it there anyway",
            options.addr
        )));
    }
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|e| ServeError::Io(format!("cannot listen on {}: {e}", options.addr)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServeError::Io(format!("cannot listen on {}: {e}", options.addr)))?;
    let app = Arc::new(App {
        data: Data::new(dir.clone()),
        dir: dir.display().to_string(),
        verify,
        allow_remote: options.allow_remote,
    });
    refresh(&app).await;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "serving {} at http://{addr}/", dir.display());
        let _ = out.flush();
    }
    let ticker = app.clone();
    let refresher = tokio::spawn(async move {
        loop {
            tokio::time::sleep(TICK).await;
            refresh(&ticker).await;
        }
    });
    let router = Router::new().fallback(handle).with_state(app);
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(stopped())
        .await;
    refresher.abort();
    served.map_err(|e| ServeError::Io(format!("serving on {addr}: {e}")))
}

async fn refresh(app: &Arc<App>) {
    let app = app.clone();
    let _ = tokio::task::spawn_blocking(move || app.data.refresh()).await;
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stopped() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

async fn handle(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut r = html(
            StatusCode::METHOD_NOT_ALLOWED,
            message_page(
                "Method not allowed",
                &format!("The dashboard is read-only: {method} is not served, only GET."),
            ),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if !app.allow_remote && !local_host(&headers) {
        // A page elsewhere could point a name of its own at 127.0.0.1 (DNS rebinding).
        return html(
            StatusCode::FORBIDDEN,
            message_page(
                "Forbidden",
                "This dashboard answers to requests for a loopback address only.",
            ),
        );
    }
    let path = uri.path();
    let query = uri.query();
    let view = app.data.view();
    match path {
        "/" => match Filter::parse(query) {
            Ok(filter) => {
                let runs = chosen(&view, &filter);
                html(StatusCode::OK, pages::home(&app.dir, &view, &filter, &runs))
            }
            Err(e) => bad_request(&e),
        },
        "/api/stats" => match Filter::parse(query) {
            Ok(filter) => {
                let runs = chosen(&view, &filter);
                let stats = Stats::of_runs(runs.iter().map(|e| (&e.run, e.steps.as_slice())), None);
                json_response(
                    StatusCode::OK,
                    serde_json::to_value(&stats).unwrap_or(Value::Null),
                )
            }
            Err(e) => json_error(StatusCode::BAD_REQUEST, &e),
        },
        // Browsers ask for it on every page; there is none.
        "/favicon.ico" => StatusCode::NO_CONTENT.into_response(),
        "/api/runs" => match Filter::parse(query) {
            Ok(filter) => json_response(StatusCode::OK, runs_json(&view, &filter)),
            Err(e) => json_error(StatusCode::BAD_REQUEST, &e),
        },
        _ => {
            if let Some(id) = path.strip_prefix("/api/runs/") {
                run_json(&view, id)
            } else if let Some(id) = path.strip_prefix("/runs/") {
                run_page(&app, &view, id).await
            } else {
                html(
                    StatusCode::NOT_FOUND,
                    message_page("Not found", &format!("Nothing is served at {path}.")),
                )
            }
        }
    }
}

/// Whether the request names a loopback host (`127.0.0.1`, `localhost`, `[::1]`).
fn local_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The runs `filter` picks, newest first.
fn chosen<'a>(view: &'a View, filter: &Filter) -> Vec<&'a RunEntry> {
    view.snapshot
        .runs
        .iter()
        .filter(|e| filter.matches(&e.run))
        .collect()
}

fn run_summary(e: &RunEntry) -> Value {
    let r = &e.run;
    json!({
        "id": r.id.as_str(),
        "pipeline": r.pipeline_name,
        "status": r.status,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "duration_ms": r.finished_at.map(|f| f.saturating_sub(r.started_at)),
        "inputs": r.inputs,
        "failure": r.failure,
        "failed_step": pages::failed_step(e),
        "steps": r.steps.len(),
    })
}

fn data_json(view: &View) -> Value {
    let (held_by, error) = match &view.access {
        Access::HeldBy(pid) => (Some(*pid), None),
        Access::Failed(e) => (None, Some(e.clone())),
        _ => (None, None),
    };
    json!({
        "read_at": view.snapshot.read_at,
        "held_by": held_by,
        "error": error,
        "note": pages::freshness(view),
    })
}

fn runs_json(view: &View, filter: &Filter) -> Value {
    let runs = chosen(view, filter);
    let page: Vec<Value> = runs
        .iter()
        .skip((filter.page - 1).saturating_mul(PER_PAGE))
        .take(PER_PAGE)
        .map(|e| run_summary(e))
        .collect();
    json!({
        "total": runs.len(),
        "page": filter.page,
        "per_page": PER_PAGE,
        "runs": page,
        "in_progress": view.live,
        "data": data_json(view),
    })
}

fn run_json(view: &View, id: &str) -> Response {
    if let Some(live) = view.live_run(id) {
        return json_response(
            StatusCode::OK,
            json!({"id": id, "recorded": false, "live": live, "data": data_json(view)}),
        );
    }
    match view.snapshot.run(id) {
        Some(e) => {
            let steps: Vec<Value> = e
                .steps
                .iter()
                .map(|s| {
                    json!({
                        "step": s.step_id,
                        "status": s.status,
                        "started_at": s.started_at,
                        "finished_at": s.finished_at,
                        "retries": s.attempts.len(),
                        "cached": matches!(s.cache, Some(flow_store::CacheUse::Hit { .. })),
                        "reason": s.reason,
                    })
                })
                .collect();
            json_response(
                StatusCode::OK,
                json!({
                    "id": id,
                    "recorded": e.run.status.is_terminal(),
                    "run": run_summary(e),
                    "steps": steps,
                    "data": data_json(view),
                }),
            )
        }
        None => json_error(StatusCode::NOT_FOUND, &format!("no run {id}")),
    }
}

async fn run_page(app: &Arc<App>, view: &Arc<View>, id: &str) -> Response {
    if let Some(live) = view.live_run(id) {
        return html(StatusCode::OK, pages::live_run(view, live));
    }
    let (Ok(run), Some(store)) = (RunId::parse(id), view.snapshot.store.clone()) else {
        return html(StatusCode::NOT_FOUND, pages::no_such_run(view, id));
    };
    if view.snapshot.run(id).is_none() {
        return html(StatusCode::NOT_FOUND, pages::no_such_run(view, id));
    }
    let verify = app.verify.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        let verdict = verify(&store, &run);
        flow_engine::report::render(&store, &run, verdict)
    })
    .await;
    match rendered {
        Ok(Ok(page)) => html(
            StatusCode::OK,
            page.replacen(
                "<body>",
                "<body>\n<nav><a href=\"/\">flow dashboard</a></nav>",
                1,
            ),
        ),
        Ok(Err(e)) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            message_page("Cannot read the run", &e.to_string()),
        ),
        Err(_) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            message_page("Cannot read the run", "the page could not be made"),
        ),
    }
}

fn bad_request(message: &str) -> Response {
    html(
        StatusCode::BAD_REQUEST,
        message_page("Bad request", message),
    )
}

fn html(status: StatusCode, body: String) -> Response {
    with_headers(status, "text/html; charset=utf-8", body)
}

fn json_response(status: StatusCode, value: Value) -> Response {
    with_headers(status, "application/json", value.to_string())
}

fn json_error(status: StatusCode, message: &str) -> Response {
    json_response(status, json!({ "error": message }))
}

fn with_headers(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_are_local() {
        let host = |h: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, HeaderValue::from_str(h).unwrap());
            local_host(&m)
        };
        for ok in [
            "127.0.0.1:8080",
            "localhost:1",
            "LOCALHOST",
            "[::1]:80",
            "127.1.2.3",
        ] {
            assert!(host(ok), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "10.0.0.1:80",
            "[::2]:80",
            "localhost.evil:80",
        ] {
            assert!(!host(bad), "{bad}");
        }
        assert!(!local_host(&HeaderMap::new()));
    }
}
