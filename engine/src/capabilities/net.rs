//! The network capability: a step granted `grants.net: [host:port, ...]` may
//! make HTTP(S) requests through `wasi:http/outgoing-handler` to those
//! authorities and no others. Everything else fails before a connection is
//! made, and so does a granted name that resolves to an address it should not
//! reach: a host name (not an IP literal, not `localhost`) must not resolve to
//! a loopback, link-local (cloud metadata), unspecified or multicast address.
//! Each request is logged to the step's log.

use std::net::IpAddr;
use std::sync::Arc;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{
    Error, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use crate::capabilities::log::{LogSink, LogSource};

/// One granted authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetGrant {
    /// Lower-case host name or IP literal (without brackets).
    pub host: String,
    /// The port.
    pub port: u16,
}

impl NetGrant {
    /// `host:port` or `[v6]:port`.
    pub fn parse(text: &str) -> Option<NetGrant> {
        let (host, port) = text.rsplit_once(':')?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = port.parse().ok()?;
        (!host.is_empty()).then_some(NetGrant { host, port })
    }

    fn literal(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
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
}

impl NetHooks {
    pub(crate) fn new(policy: Option<Arc<NetPolicy>>, log: LogSink) -> Self {
        NetHooks {
            policy: policy.unwrap_or_default(),
            log,
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
            let addresses: Vec<IpAddr> = match grant.literal() {
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
            if grant.literal().is_none()
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
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            log.line(
                LogSource::Host,
                &format!("{shown} -> {}", response.status()),
            );
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn std::future::Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

impl WasiHttpView for crate::runtime::StepState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.net,
        }
    }
}

/// A fresh wasi:http context.
pub(crate) fn context() -> WasiHttpCtx {
    WasiHttpCtx::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_and_forbidden_addresses() {
        assert_eq!(
            NetGrant::parse("Registry.Example.com:443"),
            Some(NetGrant {
                host: "registry.example.com".into(),
                port: 443
            })
        );
        assert_eq!(
            NetGrant::parse("[::1]:5000"),
            Some(NetGrant {
                host: "::1".into(),
                port: 5000
            })
        );
        assert_eq!(NetGrant::parse("nohost"), None);
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
