//! [`flow_oci::Transport`] over `wasi:http/outgoing-handler`: the host makes
//! the connection, and only to what the step's `grants.net` allows.

use flow_oci::{Request, Response, Transport, TransportError};
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

/// Requests through the host.
pub struct WasiTransport;

fn method(name: &str) -> Method {
    match name {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_owned()),
    }
}

impl Transport for WasiTransport {
    fn send(&self, request: &Request) -> Result<Response, TransportError> {
        let err =
            |what: &str| TransportError(format!("{} {}: {what}", request.method, request.url));
        let (scheme, rest) = match request.url.split_once("://") {
            Some(("http", rest)) => (Scheme::Http, rest),
            Some(("https", rest)) => (Scheme::Https, rest),
            _ => return Err(err("not an http(s) URL")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let headers: Vec<(String, Vec<u8>)> = request
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone().into_bytes()))
            .collect();
        let fields =
            Fields::from_list(&headers).map_err(|e| err(&format!("invalid header: {e:?}")))?;
        let outgoing = OutgoingRequest::new(fields);
        outgoing
            .set_method(&method(&request.method))
            .map_err(|()| err("invalid method"))?;
        outgoing
            .set_scheme(Some(&scheme))
            .map_err(|()| err("invalid scheme"))?;
        outgoing
            .set_authority(Some(authority))
            .map_err(|()| err("invalid authority"))?;
        outgoing
            .set_path_with_query(Some(path))
            .map_err(|()| err("invalid path"))?;
        // Send first, then stream the body: the host consumes the body as it
        // goes out, so writing it all before `handle` would fill its buffer and
        // block forever on a large upload.
        let body = outgoing.body().map_err(|()| err("no request body"))?;
        let future =
            outgoing_handler::handle(outgoing, None).map_err(|e| err(&format!("{e:?}")))?;
        if !request.body.is_empty() {
            let stream = body.write().map_err(|()| err("no request body stream"))?;
            for chunk in request.body.chunks(4096) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| err(&format!("sending the body: {e:?}")))?;
            }
            drop(stream);
        }
        OutgoingBody::finish(body, None).map_err(|e| err(&format!("{e:?}")))?;
        future.subscribe().block();
        let response = future
            .get()
            .ok_or_else(|| err("no response"))?
            .map_err(|()| err("response taken twice"))?
            .map_err(|e| err(&format!("{e:?}")))?;
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect();
        let incoming = response.consume().map_err(|()| err("no response body"))?;
        let stream = incoming
            .stream()
            .map_err(|()| err("no response body stream"))?;
        let mut bytes = Vec::new();
        loop {
            match stream.blocking_read(256 * 1024) {
                Ok(chunk) => bytes.extend(chunk),
                Err(StreamError::Closed) => break,
                Err(e) => return Err(err(&format!("reading the body: {e:?}"))),
            }
        }
        Ok(Response {
            status,
            headers,
            body: bytes,
        })
    }
}
