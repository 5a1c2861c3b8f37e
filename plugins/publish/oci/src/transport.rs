//! The HTTP seam: the library never opens sockets itself. In the wasm plugin
//! the host implements [`Transport`] (wasi:http); natively, the
//! `std-transport` feature provides [`tcp::TcpTransport`] (plain HTTP/1.1,
//! no TLS, meant for loopback registries and tests).

/// One HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// Absolute URL, `http://` or `https://`.
    pub url: String,
    /// Header names and values (names as written; compare case-insensitively).
    /// May contain `Authorization`: implementations must not log it.
    pub headers: Vec<(String, String)>,
    /// The body (empty for none). Implementations set `Content-Length` from it.
    pub body: Vec<u8>,
}

impl Request {
    /// A request without headers or body.
    pub fn new(method: &str, url: impl Into<String>) -> Request {
        Request {
            method: method.to_string(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Vec<u8>) -> Request {
        self.body = body;
        self
    }
}

/// One HTTP response. Redirects are not followed by the transport; the
/// client handles them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The whole body (empty for `HEAD`).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All headers named `name` (case-insensitive).
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends HTTP requests. One call, one exchange: no redirects, no retries,
/// no authentication (the client does all three).
pub trait Transport {
    /// Sends `request` and returns the response, whatever its status.
    /// `Err` only when no response was had (connection, TLS, timeout...);
    /// the message must not contain header values.
    fn send(&self, request: &Request) -> Result<Response, TransportError>;
}

impl<T: Transport + ?Sized> Transport for &T {
    fn send(&self, request: &Request) -> Result<Response, TransportError> {
        (**self).send(request)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn send(&self, request: &Request) -> Result<Response, TransportError> {
        (**self).send(request)
    }
}

/// A transport failure: no HTTP response was received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

#[cfg(feature = "std-transport")]
pub mod tcp;
