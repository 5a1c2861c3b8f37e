//! The network capability: a step granted `grants.net: [host:port, ...]` may
//! make HTTP(S) requests through `wasi:http/outgoing-handler` to those
//! authorities and no others. Everything else fails before a connection is
//! made, and so does a granted name that resolves to an address it should not
//! reach: a host name (not an IP literal, not `localhost`) must not resolve to
//! a loopback, link-local (cloud metadata), unspecified or multicast address.
//! Each request is logged to the step's log.
//!
//! The connection is made to an address that was checked, never to the name
//! again: a name that answers one address to the check and another to the
//! connection (DNS rebinding) cannot slip past the allow-list.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use flow_pipeline::{NetGrant, PlannedStep};
use http_body_util::BodyExt;
use serde_json::{Map, Value};
use wasmtime::component::Linker;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::recorded::Claims;
use super::step_log::{LogSink, LogSource};
use super::unit::{Capability, RunInputs, StepInputs, StoreData};

/// The network capability (`grants.net`): `wasi:http` requests to granted
/// authorities, through the hooks of the step's store.
pub(crate) struct Net;

impl Capability for Net {
    type Run = ();
    type Step = NetHooks;

    fn resolve(_: &RunInputs<'_>) -> Result<(), flow_pipeline::Diagnostics> {
        Ok(())
    }

    fn prepare(_: &(), inputs: &StepInputs<'_>) -> NetHooks {
        let policy = (!inputs.step.net_grants.is_empty()).then(|| {
            Arc::new(NetPolicy {
                grants: inputs.step.net_grants.clone(),
            })
        });
        NetHooks::new(policy, inputs.log.clone(), inputs.claims.clone())
    }

    fn none(log: &LogSink) -> NetHooks {
        NetHooks::new(None, log.clone(), Claims::new())
    }

    fn describe(_: &(), step: &PlannedStep, grants: &mut Map<String, Value>) {
        if !step.net_grants.is_empty() {
            grants.insert(
                "net".into(),
                step.net_grants.iter().map(|g| g.to_string()).collect(),
            );
        }
    }

    fn link<T: StoreData>(
        linker: &mut Linker<T>,
        _: fn(&mut T) -> &mut NetHooks,
    ) -> wasmtime::Result<()> {
        // The store's `wasi:http` view hands the step's hooks to the handler.
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
    }
}

fn literal(grant: &NetGrant) -> Option<IpAddr> {
    grant.host.parse().ok()
}

/// What a step may reach.
#[derive(Debug, Clone, Default)]
pub struct NetPolicy {
    /// The granted authorities.
    pub grants: Vec<NetGrant>,
}

impl NetPolicy {
    fn find(&self, host: &str, port: u16) -> Option<&NetGrant> {
        self.grants
            .iter()
            .find(|g| g.host == host && g.port == port)
    }

    fn describe(&self) -> String {
        if self.grants.is_empty() {
            "this step is granted no network access (`grants.net`)".into()
        } else {
            let list: Vec<String> = self
                .grants
                .iter()
                .map(|g| format!("{}:{}", g.host, g.port))
                .collect();
            format!("this step may reach only {}", list.join(", "))
        }
    }
}

/// Addresses a host name must not resolve to (the classic request-forgery
/// targets); grant them by IP literal, or `localhost`, to reach them.
fn forbidden_for_names(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// The wasi:http hooks of one step: the allow-list, then the default sender.
pub(crate) struct NetHooks {
    policy: Arc<NetPolicy>,
    log: LogSink,
    /// Where a request is noted (a step that made one keeps no result in the cache).
    claims: Claims,
}

impl NetHooks {
    pub(crate) fn new(policy: Option<Arc<NetPolicy>>, log: LogSink, claims: Claims) -> Self {
        NetHooks {
            policy: policy.unwrap_or_default(),
            log,
            claims,
        }
    }
}

type SendFuture = Box<
    dyn std::future::Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn std::future::Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for NetHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn std::future::Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let _ = fut;
        let policy = self.policy.clone();
        let log = self.log.clone();
        let authority = request
            .uri()
            .authority()
            .map_or_else(|| "no host".to_owned(), |a| a.to_string());
        self.claims
            .add_outside(format!("it reached the network ({authority})"));
        Box::new(async move {
            let shown = format!("{} {}", request.method(), request.uri());
            let uri = request.uri();
            let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
            let Some(authority) = uri.authority() else {
                log.line(LogSource::Host, &format!("refused {shown}: no host"));
                return Err(Error::HttpRequestDenied);
            };
            let host = authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase();
            let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
            let Some(grant) = policy.find(&host, port).cloned() else {
                log.line(
                    LogSource::Host,
                    &format!(
                        "refused {shown}: {host}:{port} is not granted; {}",
                        policy.describe()
                    ),
                );
                return Err(Error::HttpRequestDenied);
            };
            // Resolve now and check every address; the connection is made to
            // what the name resolves to.
            let addresses: Vec<IpAddr> = match literal(&grant) {
                Some(ip) => vec![ip],
                None => match tokio::net::lookup_host((host.as_str(), port)).await {
                    Ok(found) => found.map(|a| a.ip()).collect(),
                    Err(e) => {
                        log.line(
                            LogSource::Host,
                            &format!("refused {shown}: cannot resolve {host}: {e}"),
                        );
                        return Err(Error::DestinationNotFound);
                    }
                },
            };
            if literal(&grant).is_none()
                && host != "localhost"
                && let Some(bad) = addresses.iter().find(|ip| forbidden_for_names(**ip))
            {
                log.line(
                        LogSource::Host,
                        &format!("refused {shown}: {host} resolves to {bad}, which a host name may not reach (grant the address itself)"),
                    );
                return Err(Error::DestinationIpProhibited);
            }
            log.line(LogSource::Host, &shown.to_string());
            let targets: Vec<SocketAddr> = addresses
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect();
            let (response, io) = send_to(request, options, &host, &targets, https).await?;
            log.line(
                LogSource::Host,
                &format!("{shown} -> {}", response.status()),
            );
            Ok((response, io))
        })
    }
}

/// How long connecting (and the TLS and HTTP handshakes) may take by default.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

type IoFuture = Box<dyn std::future::Future<Output = Result<(), Error>> + Send>;

/// Sends `request` over a connection to the first of `targets` (the addresses that
/// were checked) that accepts one; TLS names `host`, as the request does.
async fn send_to(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    host: &str,
    targets: &[SocketAddr],
    https: bool,
) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
    use tokio::io::{AsyncRead, AsyncWrite};
    trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
    impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(CONNECT_TIMEOUT);
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(Duration::from_secs(600));
    let mut last = Error::DestinationNotFound;
    let mut tcp = None;
    for target in targets {
        match tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(target)).await {
            Ok(Ok(stream)) => {
                tcp = Some(stream);
                break;
            }
            Ok(Err(e)) => last = Error::Connect(e),
            Err(_) => last = Error::ConnectionTimeout,
        }
    }
    let tcp = tcp.ok_or(last)?;
    let stream: Box<dyn Stream> = if https {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(std::io::Error::other(e)))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = match host.parse::<IpAddr>() {
            Ok(ip) => rustls::pki_types::ServerName::from(ip),
            Err(_) => rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|e| Error::Tls(std::io::Error::other(e)))?,
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tls = tokio::time::timeout(connect_timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(Error::Tls)?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new()
            .handshake(wasmtime_wasi_http::io::TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    // The request line carries the path only; the authority stays in `Host`.
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;
    if !request.headers().contains_key(http::header::HOST)
        && let Ok(value) = http::HeaderValue::from_str(&authority_text(host, targets, https))
    {
        request.headers_mut().insert(http::header::HOST, value);
    }
    let mut conn = Box::pin(conn);
    let send = sender.send_request(request);
    tokio::pin!(send);
    // Drive the connection while waiting for the response head.
    let response = tokio::time::timeout(first_byte_timeout, async {
        tokio::select! {
            response = &mut send => response.map_err(Error::from),
            done = &mut conn => {
                done.map_err(Error::from)?;
                (&mut send).await.map_err(Error::from)
            }
        }
    })
    .await
    .map_err(|_| Error::ConnectionReadTimeout)??;
    let response = response.map(|body| body.map_err(Error::from).boxed_unsync());
    let io: IoFuture = Box::new(async move { conn.await.map_err(Error::from) });
    Ok((response, io))
}

/// `host[:port]` for a `Host` header.
fn authority_text(host: &str, targets: &[SocketAddr], https: bool) -> String {
    let port = targets.first().map(SocketAddr::port).unwrap_or(0);
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    if (https && port == 443) || (!https && port == 80) {
        host
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request goes to the address given, with the name in `Host`: the name
    /// (which resolves nowhere) is never looked up again.
    #[tokio::test]
    async fn connects_to_the_checked_address_not_the_name() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "the client closed before sending a request");
                head.extend_from_slice(&buf[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            String::from_utf8(head).unwrap()
        });
        let request = http::Request::builder()
            .method("GET")
            .uri(format!("http://rebind.invalid:{}/path?q=1", address.port()))
            .body(
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .unwrap();
        let (response, io) = send_to(request, None, "rebind.invalid", &[address], false)
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
        Box::into_pin(io).await.unwrap();
        let head = server.await.unwrap();
        assert!(head.starts_with("GET /path?q=1 HTTP/1.1\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("host: rebind.invalid:{}\r\n", address.port())),
            "{head}"
        );
    }

    #[test]
    fn forbidden_addresses() {
        for bad in [
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(forbidden_for_names(bad.parse().unwrap()), "{bad}");
        }
        for ok in ["10.1.2.3", "93.184.216.34", "2001:db8::1"] {
            assert!(!forbidden_for_names(ok.parse().unwrap()), "{ok}");
        }
    }
}
