//! Test support: a real `docker-registry` (distribution) on loopback per
//! test, skopeo as the independent reader, and the std TCP transport
//! (compiled from the crate's own source file, since integration tests
//! cannot turn on the `std-transport` feature).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use flow_oci::transport::{Request, Response, Transport, TransportError};

#[path = "../../src/transport/tcp.rs"]
pub mod tcp;

pub use tcp::TcpTransport;

/// Whether `program` is an executable on PATH.
fn have(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| std::fs::metadata(dir.join(program)).is_ok_and(|m| m.is_file()))
    })
}

/// True if the tools are installed. Otherwise prints `NOT RUN` and returns
/// false, or panics when `CI` is set (CI must have them).
pub fn tools(test: &str, programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs.iter().copied().filter(|p| !have(p)).collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!("NOT RUN: {test}: {} not installed", missing.join(", "));
    if std::env::var_os("CI").is_some() {
        panic!("{msg} (required in CI)");
    }
    eprintln!("{msg}");
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A docker-registry process on 127.0.0.1, killed on drop.
pub struct Registry {
    child: Child,
    pub host: String,
    pub dir: tempfile::TempDir,
}

impl Registry {
    /// An open registry.
    pub fn start() -> Registry {
        Self::start_with(None)
    }

    /// A registry with htpasswd basic auth for `user`/`password`.
    pub fn start_with_basic_auth(user: &str, password: &str) -> Registry {
        Self::start_with(Some((user, password)))
    }

    fn start_with(auth: Option<(&str, &str)>) -> Registry {
        let mut dir = tempfile::tempdir().expect("tempdir");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let mut auth_yaml = String::new();
        if let Some((user, password)) = auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd");
            assert!(out.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).unwrap();
            auth_yaml = format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                file.display()
            );
        }
        // Another process may take the port between probe and bind: retry.
        for _attempt in 0..5 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: 127.0.0.1:{port}\n{auth_yaml}",
                    storage.display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            let mut reg = Registry {
                child,
                host: format!("127.0.0.1:{port}"),
                dir,
            };
            if reg.wait_ready() {
                return reg;
            }
            let _ = reg.child.kill();
            let _ = reg.child.wait();
            dir = reg.into_dir();
        }
        panic!("docker-registry did not start");
    }

    fn into_dir(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    fn wait_ready(&mut self) -> bool {
        let t = TcpTransport {
            timeout: Duration::from_secs(2),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(r) = t.send(&Request::new("GET", format!("http://{}/v2/", self.host)))
                && (r.status == 200 || r.status == 401)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// The registry's log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A transport that records `METHOD URL -> STATUS` (query kept) of every exchange.
#[derive(Default)]
pub struct Recording {
    inner: TcpTransport,
    pub log: std::cell::RefCell<Vec<String>>,
}

impl Transport for Recording {
    fn send(&self, request: &Request) -> Result<Response, TransportError> {
        let r = self.inner.send(request)?;
        self.log.borrow_mut().push(format!(
            "{} {} -> {}",
            request.method, request.url, r.status
        ));
        Ok(r)
    }
}

/// A plain-HTTP client for the registry at `host`.
pub fn client(hosts: &[&str]) -> flow_oci::Client<TcpTransport> {
    let mut c = flow_oci::Client::new(TcpTransport::default());
    for h in hosts {
        c = c.with_plain_http(*h);
    }
    c
}

/// Runs skopeo; returns stdout, panicking with stderr on failure.
pub fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs skopeo; returns (success, stderr).
pub fn skopeo_status(args: &[&str]) -> (bool, String) {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes files into `dir` and returns their paths.
pub fn files(dir: &Path, files: &[(&str, &[u8])]) -> Vec<PathBuf> {
    files
        .iter()
        .map(|(name, content)| {
            let p = dir.join(name);
            std::fs::write(&p, content).unwrap();
            p
        })
        .collect()
}

// ----- a small HTTP front for the registry -----------------------------------------------
//
// Used only where a real registry cannot produce the behaviour under test:
// bearer-token auth (distribution's token auth needs a JWT issuer) and a
// registry lying about Docker-Content-Digest. Everything else it forwards
// to the real registry unchanged.

/// What the front does besides forwarding.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrontMode {
    /// Requires `Authorization: Bearer <TOKEN>` and serves `/token` (basic creds `USER:PASS`).
    Bearer,
    /// Replaces Docker-Content-Digest on manifest PUT responses with a wrong one.
    LyingDigest,
}

pub const FRONT_USER: &str = "robot";
pub const FRONT_PASS: &str = "hunter2";
const FRONT_TOKEN: &str = "tok-3f9a";

/// The front's handle: stops accepting when dropped.
pub struct Front {
    pub host: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.host); // wake the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn front(backend: &str, mode: FrontMode) -> Front {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let backend = backend.to_string();
    let (h, s) = (host.clone(), stop.clone());
    let thread = std::thread::spawn(move || {
        // Bounded: a test makes at most a few hundred requests.
        for _ in 0..2000 {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            if s.load(Ordering::SeqCst) {
                return;
            }
            let _ = serve_one(stream, &backend, &h, mode);
        }
    });
    Front {
        host,
        stop,
        thread: Some(thread),
    }
}

fn serve_one(
    mut stream: TcpStream,
    backend: &str,
    me: &str,
    mode: FrontMode,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut l = String::new();
        reader.read_line(&mut l)?;
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            let (n, v) = (n.trim().to_string(), v.trim().to_string());
            if n.eq_ignore_ascii_case("content-length") {
                len = v.parse().unwrap_or(0);
            }
            headers.push((n, v));
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let auth = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.clone());

    let reply = |stream: &mut TcpStream, status: u16, hs: &[(String, String)], body: &[u8]| {
        let mut out = format!("HTTP/1.1 {status} X\r\n");
        for (n, v) in hs {
            if n.eq_ignore_ascii_case("content-length")
                || n.eq_ignore_ascii_case("connection")
                || n.eq_ignore_ascii_case("transfer-encoding")
            {
                continue;
            }
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        let len = if method == "HEAD" {
            hs.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| "0".into())
        } else {
            body.len().to_string()
        };
        out.push_str(&format!(
            "Content-Length: {len}\r\nConnection: close\r\n\r\n"
        ));
        stream.write_all(out.as_bytes())?;
        if method != "HEAD" {
            stream.write_all(body)?;
        }
        stream.flush()
    };

    if mode == FrontMode::Bearer {
        if target.starts_with("/token") {
            let good = format!(
                "Basic {}",
                base64_encode(format!("{FRONT_USER}:{FRONT_PASS}").as_bytes())
            );
            if auth.as_deref() != Some(good.as_str()) || !target.contains("scope=repository%3A") {
                return reply(&mut stream, 401, &[], b"{\"details\":\"bad credentials\"}");
            }
            let json = format!("{{\"access_token\":\"{FRONT_TOKEN}\",\"expires_in\":300}}");
            return reply(
                &mut stream,
                200,
                &[("Content-Type".into(), "application/json".into())],
                json.as_bytes(),
            );
        }
        if auth.as_deref() != Some(format!("Bearer {FRONT_TOKEN}").as_str()) {
            let challenge = format!(
                "Bearer realm=\"http://{me}/token\",service=\"front\",scope=\"repository:x:pull\""
            );
            return reply(
                &mut stream,
                401,
                &[("WWW-Authenticate".into(), challenge)],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            );
        }
    }

    let forward = Request {
        method: method.clone(),
        url: format!("http://{backend}{target}"),
        headers: headers
            .into_iter()
            .filter(|(n, _)| {
                !n.eq_ignore_ascii_case("authorization") && !n.eq_ignore_ascii_case("host")
            })
            .collect(),
        body,
    };
    let resp = TcpTransport::default()
        .send(&forward)
        .map_err(|e| std::io::Error::other(e.0))?;
    let mut hs: Vec<(String, String)> = resp
        .headers
        .into_iter()
        .map(|(n, v)| {
            let v = if n.eq_ignore_ascii_case("location") {
                v.replace(backend, me)
            } else {
                v
            };
            (n, v)
        })
        .collect();
    if mode == FrontMode::LyingDigest && method == "PUT" && target.contains("/manifests/") {
        for (n, v) in hs.iter_mut() {
            if n.eq_ignore_ascii_case("docker-content-digest") {
                *v = format!("sha256:{}", "0".repeat(64));
            }
        }
    }
    reply(&mut stream, resp.status, &hs, &resp.body)
}

fn base64_encode(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}
