//! The network capability: a step reaches over HTTP only the authorities
//! `grants.net` names; anything else fails before a connection is made, and a
//! granted host name that resolves to a loopback address is refused too.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::session::Session;

/// A one-route HTTP server on 127.0.0.1 that counts the connections it gets;
/// it stops with the test process.
struct Server {
    port: u16,
    hits: Arc<AtomicUsize>,
}

fn serve(body: &'static str) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Server { port, hits }
}

fn probe(session: &Session, grants: &str, url: &str) {
    session.plugin("net_probe");
    session.file(
        "flow.yaml",
        format!("version: 1\nname: net\nsteps:\n  get:\n    uses: ./net_probe.wasm\n    grants: {{ net: [{grants}] }}\n    with: {{ url: '{url}' }}\n"),
    );
}

#[test]
fn a_granted_authority_is_reachable() {
    let server = serve("hello");
    let session = Session::new();
    probe(
        &session,
        &format!("'127.0.0.1:{}'", server.port),
        &format!("http://127.0.0.1:{}/x", server.port),
    );
    let (show, _) = session.run_and_show(0);
    assert_eq!(show["steps"][0]["outputs"]["status"], "200");
    assert_eq!(show["steps"][0]["outputs"]["body"], "hello");
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
    let log = session.flow(["logs", "last"]).run().stdout;
    assert!(
        log.contains(&format!("GET http://127.0.0.1:{}/x -> 200 OK", server.port)),
        "{log}"
    );
    let statement = session.statement("get");
    assert_eq!(
        statement["predicate"]["buildDefinition"]["internalParameters"]["grants"]["net"],
        serde_json::json!([format!("127.0.0.1:{}", server.port)])
    );
}

#[test]
fn anything_else_fails_before_a_connection_is_made() {
    let (granted, other) = (serve("granted"), serve("other"));
    let session = Session::new();
    probe(
        &session,
        &format!("'127.0.0.1:{}'", granted.port),
        &format!("http://127.0.0.1:{}/", other.port),
    );
    let (show, _) = session.run_and_show(1);
    let reason = show["steps"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("HttpRequestDenied"), "{reason}");
    let log = session.flow(["logs", "last"]).run().stdout;
    assert!(
        log.contains(&format!(
            "127.0.0.1:{} is not granted; this step may reach only 127.0.0.1:{}",
            other.port, granted.port
        )),
        "{log}"
    );
    assert_eq!(
        other.hits.load(Ordering::SeqCst),
        0,
        "no connection was made"
    );
    assert_eq!(granted.hits.load(Ordering::SeqCst), 0);
}

#[test]
fn a_granted_name_that_resolves_to_loopback_is_refused() {
    let server = serve("private");
    // Debian's /etc/hosts names ::1 `ip6-localhost`; the server listens on
    // 127.0.0.1 only, so a connection could not succeed anyway: what is checked
    // is that the name is refused for what it resolves to.
    let resolves = std::net::ToSocketAddrs::to_socket_addrs(&("ip6-localhost", server.port))
        .is_ok_and(|mut a| a.next().is_some());
    if !resolves {
        eprintln!("NOT RUN: `ip6-localhost` does not resolve on this machine");
        return;
    }
    let session = Session::new();
    probe(
        &session,
        &format!("'ip6-localhost:{}'", server.port),
        &format!("http://ip6-localhost:{}/", server.port),
    );
    let (show, _) = session.run_and_show(1);
    let reason = show["steps"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("DestinationIpProhibited"), "{reason}");
    let log = session.flow(["logs", "last"]).run().stdout;
    assert!(
        log.contains("which a host name may not reach (grant the address itself)"),
        "{log}"
    );
}

#[test]
fn a_plugin_that_needs_the_network_needs_a_grant() {
    let session = Session::new();
    session.plugin("net_probe");
    session.file("flow.yaml", "version: 1\nname: net\nsteps:\n  get:\n    uses: ./net_probe.wasm\n    with: { url: 'http://127.0.0.1:9/' }\n");
    let out = session.flow(["check", "flow.yaml"]).run();
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("plugin `net-probe` needs network access, but step `get` does not grant it"),
        "{}",
        out.stderr
    );
}
