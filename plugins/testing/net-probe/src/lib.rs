//! A test plugin that makes one HTTP request through `wasi:http`, to prove the
//! host lets a step reach only what `grants.net` names. Never shipped.

use flow_plugin_sdk::{Capability, Context, Description, Param, Plugin, StepError, export_plugin};
use serde::Deserialize;
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

#[derive(Deserialize)]
struct Params {
    /// `http://host:port/path`
    url: String,
}

struct NetProbe;

fn get(url: &str) -> Result<(u16, String), String> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", rest)) => (Scheme::Http, rest),
        Some(("https", rest)) => (Scheme::Https, rest),
        _ => return Err(format!("`{url}` is not an http(s) URL")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_method(&Method::Get)
        .map_err(|()| "bad method")?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| "bad scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "bad authority")?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| "bad path")?;
    let body = request.body().map_err(|()| "no body")?;
    OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))?;
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    future.subscribe().block();
    let response = future
        .get()
        .ok_or("no response")?
        .map_err(|()| "response taken twice")?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let incoming = response.consume().map_err(|()| "no body")?;
    let stream = incoming.stream().map_err(|()| "no body stream")?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend(chunk),
            Err(StreamError::Closed) => break,
            Err(e) => return Err(format!("reading the body: {e:?}")),
        }
    }
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

impl Plugin for NetProbe {
    type Params = Params;

    fn describe() -> Description {
        Description::new(
            "net-probe",
            env!("CARGO_PKG_VERSION"),
            "GETs a URL (tests only)",
        )
        .param(Param::string("url", "what to GET").required())
        .output("status", "the response status")
        .output("body", "the response body")
        .needs(Capability::Net)
    }

    fn run(params: Params, ctx: &mut Context) -> Result<(), StepError> {
        let (status, body) =
            get(&params.url).map_err(|e| StepError::new(format!("GET {}: {e}", params.url)))?;
        ctx.set_output("status", &status.to_string());
        ctx.set_output("body", &body);
        Ok(())
    }
}

export_plugin!(NetProbe);
