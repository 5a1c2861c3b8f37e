//! `flow serve`: the read-only dashboard. Its figures are `flow runs --stats`'s, it
//! never keeps a `flow run` from starting, never writes in the data dir, and follows
//! runs in progress through their live files.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::browser;
use crate::session::{Running, Session};

/// A pipeline whose inputs pick what happens: `check` fails with `mode: fail`,
/// `flaky` (with `flaky: true`) fails its first attempt and is retried, `seed` is
/// taken from the cache after the first run.
const DASH: &str = r#"version: 1
name: dash
inputs:
  n: { type: string }
  branch: { type: string, default: main }
  mode: { type: string, default: ok }
  flaky: { type: boolean, default: false }
steps:
  seed:
    uses: ./fs_probe.wasm
    with: { write: seed.txt, content: seed }
  flaky:
    uses: ./misbehave.wasm
    needs: [seed]
    if: ${{ inputs.flaky }}
    retry: { attempts: 2, backoff: 0s }
    grants: { fs: [ { path: state, access: write } ] }
    with: { mode: flaky, path: "STATE/a-${{ inputs.n }}", count: 2 }
  check:
    uses: ./misbehave.wasm
    needs: [seed]
    with: { mode: "${{ inputs.mode }}" }
"#;

/// A run that takes a few seconds: `wait` fails its first attempt and is tried again
/// after a backoff.
const SLOW: &str = r#"version: 1
name: slow
inputs:
  n: { type: string }
steps:
  first:
    uses: ./fs_probe.wasm
    with: { list: . }
  wait:
    uses: ./misbehave.wasm
    needs: [first]
    retry: { attempts: 2, backoff: BACKOFF }
    grants: { fs: [ { path: state, access: write } ] }
    with: { mode: flaky, path: "STATE/slow-${{ inputs.n }}", count: 2 }
"#;

fn dash_session() -> Session {
    let session = Session::new();
    session.plugin("misbehave").plugin("fs_probe").dir("state");
    let state = session.path("state").canonicalize().unwrap();
    session.file(
        "dash.yaml",
        DASH.replace("STATE", &state.display().to_string()),
    );
    slow_pipeline(&session, "4s");
    session
}

/// Writes `slow.yaml`, whose run waits `backoff` between its attempts.
fn slow_pipeline(session: &Session, backoff: &str) {
    let state = session.path("state").canonicalize().unwrap();
    session.file(
        "slow.yaml",
        SLOW.replace("STATE", &state.display().to_string())
            .replace("BACKOFF", backoff),
    );
}

/// Runs `dash.yaml` as run `n` of a series: every 4th fails, every 3rd (of the others)
/// retries a flaky step, branches alternate.
fn dash_run(session: &Session, n: usize) {
    let name = format!("n={n}");
    let mode = if n % 4 == 3 { "mode=fail" } else { "mode=ok" };
    let flaky = if n % 3 == 1 && n % 4 != 3 {
        "flaky=true"
    } else {
        "flaky=false"
    };
    let branch = if n.is_multiple_of(2) {
        "branch=main"
    } else {
        "branch=<b>dev</b>"
    };
    let out = session
        .flow([
            "run",
            "dash.yaml",
            "-i",
            &name,
            "-i",
            mode,
            "-i",
            flaky,
            "-i",
            branch,
        ])
        .run();
    out.expect_code(if n % 4 == 3 { 1 } else { 0 });
}

/// A dashboard started by a test, on a free loopback port; stopped (SIGTERM) at the
/// end of the test.
struct Server {
    running: Option<Running>,
    addr: String,
}

impl Server {
    fn start(session: &Session) -> Server {
        let running = session.flow(["serve", "--addr", "127.0.0.1:0"]).spawn();
        running.wait_for_stdout("/\n", Duration::from_secs(60));
        let first = running.stdout().lines().next().unwrap().to_owned();
        let expected = format!("serving {} at http://", session.data_dir().display());
        assert!(first.starts_with(&expected), "{first}");
        let addr = first[expected.len()..].trim_end_matches('/').to_owned();
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
        Server {
            running: Some(running),
            addr,
        }
    }

    fn get(&self, path: &str) -> Reply {
        request(&self.addr, "GET", path, &self.addr)
    }

    fn json(&self, path: &str) -> Value {
        let reply = self.get(path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn stop(&mut self) {
        if let Some(mut running) = self.running.take() {
            running.signal("TERM");
            let out = running.wait(Duration::from_secs(30));
            assert_eq!(out.code(), Some(0), "{}", out.stderr);
        }
    }
}

impl Drop for Server {
    /// Ends it without failing the test (which may be failing already): SIGTERM, and
    /// SIGKILL (dropping it) if it is still there a moment later.
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM".to_owned(), running.pid().to_string()])
                .status();
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

struct Reply {
    status: u16,
    headers: String,
    body: String,
}

/// One HTTP/1.1 request, the connection closed after it.
fn request(addr: &str, method: &str, path: &str, host: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    let headers = head.to_ascii_lowercase();
    let body = if headers.contains("transfer-encoding: chunked") {
        unchunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// Every file below `dir` but the live files, with its size and modification time.
fn listing(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if entry.file_name() == "live" && d == dir {
                continue;
            }
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                out.push((entry.path(), meta.len(), meta.modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn stats_json(session: &Session) -> Value {
    let out = session.flow(["--json", "runs", "--stats"]).run();
    out.expect_success();
    out.json()
}

#[test]
fn the_dashboard_shows_flow_runs_stats_figures_filters_and_run_pages_and_writes_nothing() {
    let session = dash_session();
    for n in 0..8 {
        dash_run(&session, n);
    }
    let expected = stats_json(&session);
    assert_eq!(expected["runs"], 8);
    let before = listing(&session.data_dir());
    let mut server = Server::start(&session);

    // The same figures as `flow runs --stats`.
    assert_eq!(server.json("/api/stats"), expected);
    let dash = &expected["pipelines"][0];
    assert_eq!(
        (&dash["failed"], &dash["succeeded"]),
        (&2.into(), &6.into())
    );

    // Filters.
    let failed = server.json("/api/runs?status=failed");
    assert_eq!(failed["total"], 2);
    assert!(
        failed["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "failed" && r["failed_step"] == "check"),
        "{failed}"
    );
    assert_eq!(server.json("/api/stats?status=failed")["runs"], 2);
    assert_eq!(server.json("/api/stats?pipeline=nope")["runs"], 0);
    assert_eq!(server.json("/api/runs?branch=main")["total"], 4);
    assert_eq!(server.json("/api/runs?input=branch%3Dmain")["total"], 4);
    assert_eq!(
        server.json("/api/runs?input=%3Cb%3Edev%3C%2Fb%3E")["total"],
        4
    );
    assert_eq!(server.json("/api/runs?input=n%3D5")["total"], 1);
    assert_eq!(
        server.json("/api/runs?from=2000-01-01&to=2000-12-31")["total"],
        0
    );
    assert_eq!(server.json("/api/runs?from=2000-01-01")["total"], 8);
    let flaky = server.json("/api/stats?input=flaky%3Dtrue");
    let steps = flaky["pipelines"][0]["steps"].as_array().unwrap();
    let step = |id: &str| steps.iter().find(|s| s["step"] == id).unwrap().clone();
    assert_eq!(step("flaky")["retried"], 2);
    assert_eq!(step("flaky")["flaky"], 2);
    assert!(step("seed")["cached"].as_u64().unwrap() >= 2);

    // Bad parameters are refused with a message, never guessed.
    for bad in [
        "/?status=bogus",
        "/api/stats?from=yesterday",
        "/api/runs?page=0",
        "/?colour=red",
    ] {
        let reply = server.get(bad);
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
    }
    assert!(
        server
            .get("/?status=bogus")
            .body
            .contains("status `bogus` is none of")
    );

    // The home page: figures, charts, escaped values, links to failures' steps.
    let home = server.get("/");
    assert_eq!(home.status, 200);
    assert!(home.headers.contains("content-type: text/html"));
    assert!(
        home.headers
            .contains("content-security-policy: default-src 'none'")
    );
    let page = &home.body;
    assert!(page.contains("<b id=\"total-runs\">8</b>"), "{page}");
    assert!(page.contains("<b id=\"success-rate\">75.0%</b>"));
    assert!(page.contains("<b id=\"failed-runs\">2</b>"));
    assert!(page.contains("<svg id=\"runs-chart\""));
    assert!(page.contains("class=\"histogram\""));
    assert!(page.contains("branch=&lt;b&gt;dev&lt;/b&gt;"));
    assert!(!page.contains("<b>dev</b>"));
    assert!(
        page.contains("#step-check\""),
        "a failure links to its step"
    );
    for loads in ["src=", "http://", "https://", "@import", "url("] {
        assert!(!page.contains(loads), "the page has `{loads}`");
    }
    // A failed run's page is its report, verified, with its log.
    let id = failed["runs"][0]["id"].as_str().unwrap();
    let run = server.get(&format!("/runs/{id}"));
    assert_eq!(run.status, 200);
    assert!(run.body.contains(&format!("<title>flow run {id}</title>")));
    assert!(run.body.contains("misbehave was told to fail"));
    assert!(run.body.contains("flow verify: verified"), "{}", run.body);
    assert_eq!(server.json(&format!("/api/runs/{id}"))["recorded"], true);

    // Unknown runs and paths are 404s; anything but GET is refused.
    let missing = server.get("/runs/20200101T000000Z-none");
    assert_eq!(missing.status, 404);
    assert!(
        missing
            .body
            .contains("There is no run 20200101T000000Z-none")
    );
    assert_eq!(server.get("/runs/..%2F..%2Fetc").status, 404);
    assert_eq!(server.get("/api/runs/nope").status, 404);
    assert_eq!(server.get("/nowhere").status, 404);
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        for path in ["/", "/api/stats", "/runs/x"] {
            let reply = request(&server.addr, method, path, &server.addr);
            assert_eq!(reply.status, 405, "{method} {path}");
            assert!(reply.headers.contains("allow: get, head"));
        }
    }
    // A request for another host name (DNS rebinding) is refused.
    assert_eq!(
        request(&server.addr, "GET", "/", "evil.example:80").status,
        403
    );
    server.stop();
    assert_eq!(
        listing(&session.data_dir()),
        before,
        "serving changed the data dir"
    );
}

#[test]
fn only_loopback_is_served_unless_allowed() {
    let session = Session::new();
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"] {
        let out = session.flow(["serve", "--addr", addr]).run();
        out.expect_code(2);
        assert!(
            out.stderr.contains("is not a loopback address"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("no authentication"), "{}", out.stderr);
        assert!(out.stderr.contains("--allow-remote"), "{}", out.stderr);
        assert!(out.stdout.is_empty());
    }
    let bad = session.flow(["serve", "--addr", "localhost"]).run();
    bad.expect_code(2);
    // A data dir with no store yet is served (and not created).
    let mut server = Server::start(&session);
    assert_eq!(server.json("/api/stats")["runs"], 0);
    assert!(server.get("/").body.contains("No runs yet"));
    server.stop();
    assert!(!session.data_dir().exists());
}

/// Polls the dashboard as fast as it answers until told to stop; returns how many
/// requests it made.
fn poll(addr: String, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> usize {
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        for path in ["/", "/api/runs", "/api/stats"] {
            assert_eq!(request(&addr, "GET", path, &addr).status, 200, "{path}");
            n += 1;
        }
    }
    n
}

#[test]
fn runs_start_while_the_dashboard_polls_and_a_run_in_progress_is_followed_live() {
    let session = dash_session();
    dash_run(&session, 0);
    let server = Server::start(&session);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (addr, stop) = (server.addr.clone(), stop.clone());
        std::thread::spawn(move || poll(addr, stop))
    };
    // The reader never keeps a run from starting.
    for n in 1..6 {
        dash_run(&session, n);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.json("/api/runs")["total"] != 6 {
        assert!(Instant::now() < deadline, "the runs are never read");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A run in progress: its page says so, the home page says who holds the data dir.
    let mut slow = session.flow(["run", "slow.yaml", "-i", "n=1"]).spawn();
    slow.wait_for_stdout("attempt 1 of 2", Duration::from_secs(60));
    let id = crate::session::run_id(&slow.stdout());
    let deadline = Instant::now() + Duration::from_secs(30);
    let runs = loop {
        let runs = server.json("/api/runs");
        if runs["in_progress"][0]["steps"][1]["status"] == "retrying" {
            break runs;
        }
        assert!(Instant::now() < deadline, "not shown in progress: {runs}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(runs["in_progress"][0]["id"], id.as_str());
    assert_eq!(runs["data"]["held_by"], slow.pid());
    assert_eq!(runs["total"], 6, "the runs read before it are still shown");
    let home = server.get("/").body;
    assert!(
        home.contains(&format!(
            "data dir held by flow pid {} (a run in progress); figures as of ",
            slow.pid()
        )),
        "{home}"
    );
    assert!(home.contains(&format!("href=\"/runs/{id}\"")));
    let page = server.get(&format!("/runs/{id}")).body;
    assert!(page.contains("id=\"run-status\">running</span>"), "{page}");
    assert!(page.contains("id=\"live-step-wait\""));
    let live = server.json(&format!("/api/runs/{id}"));
    assert_eq!(live["recorded"], false);
    assert_eq!(live["live"]["steps"][0]["status"], "succeeded");
    assert!(
        session
            .data_dir()
            .join(format!("live/{id}.jsonl"))
            .is_file()
    );

    let out = slow.wait(Duration::from_secs(60));
    out.expect_code(0);
    assert!(
        !session.data_dir().join("live").exists(),
        "the live file is removed when the run ends"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = server.json(&format!("/api/runs/{id}"));
        if run["recorded"] == true {
            assert_eq!(run["run"]["status"], "succeeded");
            assert!(run["steps"][1]["retries"].as_u64().unwrap() >= 1, "{run}");
            break;
        }
        assert!(Instant::now() < deadline, "never recorded: {run}");
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let polls = poller.join().unwrap();
    assert!(polls > 10, "the poller made {polls} requests");
    assert_eq!(server.json("/api/runs")["total"], 7);
    assert!(
        server.json("/api/runs")["in_progress"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    drop(server);
}

#[test]
fn in_a_browser_the_dashboard_shows_200_runs_and_follows_a_run_to_its_end() {
    let session = dash_session();
    for n in 0..200 {
        dash_run(&session, n);
    }
    let expected = stats_json(&session);
    assert_eq!(expected["runs"], 200);
    let mut server = Server::start(&session);
    let base = format!("http://{}", server.addr);
    let shots = browser::shots("dashboard");
    let Some(seen) = browser::check("dashboard.mjs", &[&base, &shots.display().to_string()]) else {
        return;
    };
    let dash = &expected["pipelines"][0];
    let rate = dash["success_rate"].as_f64().unwrap();
    assert_eq!(seen["total"], "200");
    assert_eq!(seen["rate"], format!("{:.1}%", rate * 100.0));
    assert_eq!(seen["failed"], dash["failed"].to_string());
    assert_eq!(seen["failed"], "50");
    assert_eq!(seen["pipelineRuns"], "200");
    assert_eq!(seen["runRows"], 50, "a page of the runs table");
    assert!(seen["chartBars"].as_u64().unwrap() > 0);
    // The failure clicked opened its run's page on the failed step's log.
    assert!(
        seen["failureUrl"]
            .as_str()
            .unwrap()
            .ends_with("#step-check"),
        "{seen}"
    );
    assert_eq!(seen["logVisible"], true);
    assert!(
        seen["reason"]
            .as_str()
            .unwrap()
            .contains("misbehave was told to fail")
    );
    assert_eq!(seen["filteredTotal"], "50");
    for url in seen["requests"].as_array().unwrap() {
        assert!(url.as_str().unwrap().starts_with(&base), "loaded {url}");
    }
    assert_eq!(seen["errors"], serde_json::json!([]));

    // A run in progress, followed to its end without a reload.
    slow_pipeline(&session, "10s");
    let mut slow = session.flow(["run", "slow.yaml", "-i", "n=2"]).spawn();
    slow.wait_for_stdout("attempt 1 of 2", Duration::from_secs(60));
    let id = crate::session::run_id(&slow.stdout());
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.json("/api/runs")["in_progress"][0]["id"] != id.as_str() {
        assert!(Instant::now() < deadline, "not shown in progress");
        std::thread::sleep(Duration::from_millis(100));
    }
    let seen = browser::check(
        "live.mjs",
        &[&format!("{base}/runs/{id}"), &shots.display().to_string()],
    )
    .unwrap();
    slow.wait(Duration::from_secs(60)).expect_code(0);
    assert_eq!(seen["before"], "running");
    assert_eq!(seen["after"], "succeeded");
    assert_eq!(seen["sameWindow"], true, "the page was reloaded");
    assert!(
        seen["verification"]
            .as_str()
            .unwrap()
            .contains("flow verify: verified")
    );
    for url in seen["requests"].as_array().unwrap() {
        assert!(url.as_str().unwrap().starts_with(&base), "loaded {url}");
    }
    assert_eq!(seen["errors"], serde_json::json!([]));
    server.stop();
}
