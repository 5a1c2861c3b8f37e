//! Plain HTTP/1.1 over `std::net::TcpStream`: one connection per request,
//! `Connection: close`, no TLS (so `http://` URLs only). For loopback
//! registries and tests; never part of the wasm plugin.
//!
//! This file is also compiled directly by the integration tests, so it uses
//! only `super::{Request, Response, Transport, TransportError}`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::{Request, Response, Transport, TransportError};

/// Plain-HTTP transport over TCP.
#[derive(Debug, Clone)]
pub struct TcpTransport {
    /// Read/write timeout per request.
    pub timeout: Duration,
}

impl Default for TcpTransport {
    fn default() -> Self {
        TcpTransport {
            timeout: Duration::from_secs(60),
        }
    }
}

impl Transport for TcpTransport {
    fn send(&self, request: &Request) -> Result<Response, TransportError> {
        let err = |what: &str, e: &dyn std::fmt::Display| {
            TransportError(format!(
                "{} {}: {what}: {e}",
                request.method,
                strip_query(&request.url)
            ))
        };
        let rest = request.url.strip_prefix("http://").ok_or_else(|| {
            TransportError(format!(
                "{}: only http:// URLs are supported by TcpTransport",
                strip_query(&request.url)
            ))
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.contains(']'))
        {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let mut stream = TcpStream::connect(addr.as_str()).map_err(|e| err("connect", &e))?;
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(|e| err("socket", &e))?;
        stream
            .set_write_timeout(Some(self.timeout))
            .map_err(|e| err("socket", &e))?;
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\n",
            request.method, path, authority
        );
        for (n, v) in &request.headers {
            if n.eq_ignore_ascii_case("content-length")
                || n.eq_ignore_ascii_case("host")
                || n.eq_ignore_ascii_case("connection")
            {
                continue;
            }
            if n.contains(['\r', '\n', ':']) || v.contains(['\r', '\n']) {
                return Err(TransportError(format!("invalid header `{n}`")));
            }
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if !request.body.is_empty() || matches!(request.method.as_str(), "POST" | "PUT" | "PATCH") {
            head.push_str(&format!("Content-Length: {}\r\n", request.body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");
        stream
            .write_all(head.as_bytes())
            .map_err(|e| err("write", &e))?;
        stream
            .write_all(&request.body)
            .map_err(|e| err("write", &e))?;
        stream.flush().map_err(|e| err("write", &e))?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(|e| err("read", &e))?;
        parse_response(&raw, request.method == "HEAD").map_err(|e| err("response", &e))
    }
}

fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn parse_response(raw: &[u8], head_only: bool) -> Result<Response, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("empty response")?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line `{status_line}`"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line `{status_line}`"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (n, v) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line `{line}`"))?;
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &raw[end + 4..];
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(response);
    }
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    response.body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = response.header("content-length") {
        let len: usize = len.parse().map_err(|_| "bad Content-Length")?;
        rest.get(..len)
            .ok_or("body shorter than Content-Length")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(response)
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_str = std::str::from_utf8(&data[..eol]).map_err(|_| "bad chunk size")?;
        let size_str = size_str.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_str, 16).map_err(|_| "bad chunk size")?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).ok_or("truncated chunk")?;
    }
}
