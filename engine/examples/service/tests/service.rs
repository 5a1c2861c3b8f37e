//! The example service end to end, as its clients see it: the real binary on a
//! loopback port with directories of its own, 20 pipelines started at once, every
//! event stream read to its end, every run's provenance fetched and checked by the
//! reference in-toto verifier, and a shutdown that cancels what is running.
//!
//! The reference verifier comes from the venv named by `FLOW_INTOTO_VENV` (`.ci/run`
//! makes it). Without the variable that part says `NOT RUN` and is skipped, unless
//! `CI` is set: then it fails.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;

/// How many runs are started at once.
const RUNS: usize = 20;

/// Two independent steps and one that needs both and reads their outputs.
const PIPELINE: &str = r#"version: 1
name: fan-in
inputs:
  who: { type: string, default: world }
steps:
  left:
    uses: echo
    with: { message: "left ${{ inputs.who }}" }
  right:
    uses: echo
    with: { message: right }
  join:
    uses: echo
    needs: [left, right]
    with: { message: "${{ steps.left.outputs.message }} + ${{ steps.right.outputs.message }}" }
"#;

/// How long anything one request waits for may take, on a busy 2-core machine.
const PATIENCE: Duration = Duration::from_secs(180);

/// A `flow-service` process with a home, data, cache and key dir of its own; killed
/// when dropped, also when the test panics (then its log is printed).
struct Service {
    child: Child,
    base: String,
    log: PathBuf,
    _home: tempfile::TempDir,
}

impl Service {
    /// Starts the service on a free loopback port and waits until it answers.
    async fn start(extra: &[&str], client: &reqwest::Client) -> Service {
        let home = tempfile::tempdir().unwrap();
        let log = home.path().join("service.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_flow-service"))
            .args(["--addr", "127.0.0.1:0", "--data-dir"])
            .arg(home.path().join("data"))
            .arg("--cache-dir")
            .arg(home.path().join("cache"))
            .arg("--key-dir")
            .arg(home.path().join("keys"))
            .args(extra)
            .env("HOME", home.path())
            .env_remove("XDG_CACHE_HOME")
            .env("FLOW_SERVICE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start flow-service");
        let stdout = child.stdout.take().unwrap();
        let mut service = Service {
            child,
            base: String::new(),
            log,
            _home: home,
        };
        // The service prints the address it took (it was given port 0).
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(PATIENCE)
            .expect("the service said where it listens");
        let address = line
            .trim()
            .strip_prefix("flow-service listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        assert!(address.starts_with("http://127.0.0.1:"), "{address}");
        service.base = address.to_owned();

        let deadline = Instant::now() + PATIENCE;
        loop {
            match client.get(service.url("/healthz")).send().await {
                Ok(response) if response.status() == 200 => break,
                _ if Instant::now() > deadline => panic!("the service never answered"),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        service
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the process to exit.
    async fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the service did not stop");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let _ = writeln!(
                std::io::stderr(),
                "--- flow-service log ---\n{}",
                self.log()
            );
        }
    }
}

/// A client that talks to loopback directly, whatever proxy the environment names.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

/// One server-sent event.
#[derive(Debug)]
struct Sse {
    id: Option<String>,
    event: String,
    data: Value,
}

/// Reads an event stream to its end.
async fn read_events(client: &reqwest::Client, url: &str) -> Vec<Sse> {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let mut body = response.bytes_stream();
    let mut buffer: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    while let Some(chunk) = body.next().await {
        buffer.extend_from_slice(&chunk.unwrap());
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buffer.drain(..end + 2).collect();
            let block = String::from_utf8(block).unwrap();
            let mut event = Sse {
                id: None,
                event: "message".into(),
                data: Value::Null,
            };
            let mut data = String::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("id:") {
                    event.id = Some(value.trim().to_owned());
                } else if let Some(value) = line.strip_prefix("event:") {
                    event.event = value.trim().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.strip_prefix(' ').unwrap_or(value));
                }
            }
            // A block of comments only (a keep-alive) is no event.
            if !data.is_empty() {
                event.data = serde_json::from_str(&data).unwrap();
                events.push(event);
            }
        }
    }
    assert!(
        buffer.iter().all(|b| b.is_ascii_whitespace()),
        "a partial event"
    );
    events
}

/// Checks that the events of one run of [`PIPELINE`] are whole and in a valid order;
/// returns the outputs of `join`.
fn check_events(run: &str, events: &[Sse]) -> BTreeMap<String, String> {
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e.data["step"].as_str() {
            Some(step) => format!("{} {step}", e.event),
            None => e.event.clone(),
        })
        .collect();
    let position = |kind: &str| {
        kinds
            .iter()
            .position(|k| k == kind)
            .unwrap_or_else(|| panic!("run {run}: no `{kind}` in {kinds:?}"))
    };
    assert_eq!(events.len(), 8, "run {run}: {kinds:?}");
    assert_eq!(kinds[0], "run-started", "{kinds:?}");
    assert_eq!(kinds[7], "run-finished", "{kinds:?}");
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.id.as_deref(), Some(index.to_string().as_str()));
        assert_eq!(event.data["event"], event.event.as_str());
        assert_eq!(event.data["run"], run, "{:?}", event.data);
    }
    let mut steps: Vec<&str> = events[0].data["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    steps.sort();
    assert_eq!(steps, ["join", "left", "right"]);
    for step in ["left", "right", "join"] {
        assert!(
            position(&format!("step-started {step}")) < position(&format!("step-finished {step}")),
            "{kinds:?}"
        );
    }
    for need in ["left", "right"] {
        assert!(
            position(&format!("step-finished {need}")) < position("step-started join"),
            "{kinds:?}"
        );
    }
    let finished: Vec<&Sse> = events
        .iter()
        .filter(|e| e.event == "step-finished")
        .collect();
    assert_eq!(finished.len(), 3, "{kinds:?}");
    for event in &finished {
        assert_eq!(event.data["status"], "succeeded", "{:?}", event.data);
    }
    assert_eq!(
        events[7].data["status"], "succeeded",
        "{:?}",
        events[7].data
    );
    let join = finished.iter().find(|e| e.data["step"] == "join").unwrap();
    serde_json::from_value(join.data["outputs"].clone()).unwrap()
}

/// What one client saw of one run.
struct Seen {
    run: String,
    who: String,
    /// From sending the POST to its `201`.
    answered: Duration,
    /// From sending the POST to the end of the event stream.
    finished: Duration,
    events: Vec<Sse>,
}

/// Posts a pipeline to `url`; the run must be created (201). Its answer.
async fn post_run(client: &reqwest::Client, url: &str, pipeline: &'static str) -> Value {
    let response = client
        .post(url)
        .header("content-type", "application/yaml")
        .body(pipeline)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// Posts [`PIPELINE`] and reads the run's events to the end.
async fn one_run(client: reqwest::Client, base: String, index: usize) -> Seen {
    let who = format!("client-{index}");
    let sent = Instant::now();
    let body = post_run(&client, &format!("{base}/runs?input=who%3D{who}"), PIPELINE).await;
    let answered = sent.elapsed();
    let run = body["run"].as_str().unwrap().to_owned();
    assert_eq!(body["events"], format!("/runs/{run}/events"));
    assert_eq!(body["provenance"], format!("/runs/{run}/provenance"));
    let events = read_events(&client, &format!("{base}/runs/{run}/events")).await;
    Seen {
        run,
        who,
        answered,
        finished: sent.elapsed(),
        events,
    }
}

/// The reference verifier, or `None` (after saying so) outside CI without a venv.
fn in_toto_verify() -> Option<PathBuf> {
    match std::env::var_os("FLOW_INTOTO_VENV").filter(|v| !v.is_empty()) {
        Some(venv) => {
            let tool = PathBuf::from(venv).join("bin").join("in-toto-verify");
            assert!(
                tool.exists(),
                "FLOW_INTOTO_VENV has no {}; create the venv with `pip install \
                 'in-toto==3.1.0' 'in-toto-attestation==0.9.3'`",
                tool.display()
            );
            Some(tool)
        }
        None if std::env::var_os("CI").is_some() => {
            panic!("CI is set but FLOW_INTOTO_VENV is not: .ci/run sets it")
        }
        None => {
            let _ = writeln!(
                std::io::stderr(),
                "NOT RUN: in-toto-verify on the service's exports (FLOW_INTOTO_VENV is not set)"
            );
            None
        }
    }
}

/// Runs in-toto-verify on an export directory.
fn run_in_toto_verify(tool: &Path, dir: &Path) -> std::process::Output {
    Command::new(tool)
        .args([
            "--layout",
            "root.layout",
            "--verification-keys",
            "owner.pub",
            "--link-dir",
            ".",
        ])
        .current_dir(dir)
        .output()
        .unwrap()
}

fn show(output: &std::process::Output) -> String {
    format!(
        "{}\n--- stdout\n{}--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{url}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_runs_at_once_stream_their_events_and_verify() {
    let client = client();
    let mut service = Service::start(&[], &client).await;

    // 20 clients at once: each posts the pipeline and reads its run's events.
    let started = Instant::now();
    let clients: Vec<_> = (0..RUNS)
        .map(|i| tokio::spawn(one_run(client.clone(), service.base.clone(), i)))
        .collect();
    let mut seen = Vec::new();
    for client in clients {
        seen.push(
            tokio::time::timeout(PATIENCE, client)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let total = started.elapsed();
    let answered: Vec<Duration> = seen.iter().map(|s| s.answered).collect();
    let finished: Vec<Duration> = seen.iter().map(|s| s.finished).collect();
    let _ = writeln!(
        std::io::stderr(),
        "{RUNS} runs at once: all done in {total:?}; POST answered in {:?}..{:?} (median {:?}); \
         run finished (POST to the stream's end) in {:?}..{:?} (median {:?})",
        answered.iter().min().unwrap(),
        answered.iter().max().unwrap(),
        median(answered.clone()),
        finished.iter().min().unwrap(),
        finished.iter().max().unwrap(),
        median(finished.clone()),
    );
    let mut ids: Vec<&str> = seen.iter().map(|s| s.run.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), RUNS, "every run has its own id");
    for run in &seen {
        let outputs = check_events(&run.run, &run.events);
        assert_eq!(outputs["message"], format!("left {} + right", run.who));
    }

    // A second reader of a finished run gets the same events, from the start.
    let again = read_events(
        &client,
        &service.url(&format!("/runs/{}/events", seen[0].run)),
    )
    .await;
    check_events(&seen[0].run, &again);

    // The record, the service's own verification, and the reference verifier.
    let verifier = in_toto_verify();
    let exports = tempfile::tempdir().unwrap();
    for run in &seen {
        let id = &run.run;
        let record = get_json(&client, &service.url(&format!("/runs/{id}"))).await;
        assert_eq!(record["run"]["id"], id.as_str());
        assert_eq!(record["run"]["status"], "succeeded", "{record}");
        assert_eq!(record["steps"].as_array().unwrap().len(), 3, "{record}");

        let verified = get_json(&client, &service.url(&format!("/runs/{id}/verify"))).await;
        assert_eq!(verified["verified"], true, "{verified}");
        assert!(
            verified["report"].as_str().unwrap().contains("join"),
            "{verified}"
        );

        let bundle = get_json(&client, &service.url(&format!("/runs/{id}/provenance"))).await;
        let files = bundle["files"].as_object().unwrap();
        for name in ["root.layout", "owner.pub", "run.json"] {
            assert!(files.contains_key(name), "no {name} in {:?}", files.keys());
        }
        let dir = exports.path().join(id);
        std::fs::create_dir(&dir).unwrap();
        for (name, text) in files {
            assert!(
                !name.contains('/') && !name.starts_with('.'),
                "a file name that is not plain: {name:?}"
            );
            std::fs::write(dir.join(name), text.as_str().unwrap()).unwrap();
        }
        if let Some(tool) = &verifier {
            let output = run_in_toto_verify(tool, &dir);
            assert!(output.status.success(), "run {id}: {}", show(&output));
        }
    }
    // The reference verifier does check: without one of the links it refuses.
    if let Some(tool) = &verifier {
        let dir = exports.path().join(&seen[0].run);
        let link = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "link"))
            .unwrap();
        std::fs::remove_file(link).unwrap();
        let output = run_in_toto_verify(tool, &dir);
        assert!(!output.status.success(), "{}", show(&output));
    }

    // What is refused, and how.
    let post = |body: &'static str, query: &'static str, content_type: &'static str| {
        let client = client.clone();
        let url = service.url(&format!("/runs{query}"));
        async move {
            let response = client
                .post(url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, text) = post(
        "version: 1\nname: typo\nsteps:\n  greet:\n    uses: echo\n    nedds: [x]\n",
        "",
        "application/yaml",
    )
    .await;
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("flow.yaml:6:5: error"), "{text}");
    assert!(
        !text.contains("/tmp"),
        "the service's own paths stay its own: {text}"
    );
    let (status, text) = post(
        "version: 1\nname: reach\nsteps:\n  look:\n    uses: echo\n    grants: { fs: [{ path: /, access: read }] }\n",
        "",
        "text/plain",
    )
    .await;
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("flow.yaml:6:"), "{text}");
    assert!(text.contains("--allow-host-access"), "{text}");
    let (status, text) = post(PIPELINE, "?input=whom%3Dx", "application/yaml").await;
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("whom"), "{text}");
    let (status, text) = post(PIPELINE, "?nput=who%3Dx", "application/yaml").await;
    assert_eq!(status, 400, "{text}");
    let (status, text) = post(PIPELINE, "", "application/x-www-form-urlencoded").await;
    assert_eq!(status, 415, "{text}");
    let response = client
        .get(service.url("/runs/20200101-000000-0000"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // Shut down cleanly.
    let status = service.terminate().await;
    assert!(status.success(), "{status}; log:\n{}", service.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_cancels_the_runs_under_way_and_records_them() {
    let client = client();
    let mut service = Service::start(&["--allow-host-access"], &client).await;
    let pipeline = "version: 1\nname: slow\nsteps:\n  nap:\n    uses: build\n    grants: { exec: [sleep] }\n    with: { command: [sleep, \"120\"] }\n  after:\n    uses: echo\n    needs: [nap]\n    with: { message: never }\n";
    let body = post_run(&client, &service.url("/runs"), pipeline).await;
    let events_url = service.url(body["events"].as_str().unwrap());
    let reader = {
        let client = client.clone();
        tokio::spawn(async move { read_events(&client, &events_url).await })
    };
    // Wait until the step runs, then stop the service.
    let deadline = Instant::now() + PATIENCE;
    let run = body["run"].as_str().unwrap().to_owned();
    loop {
        let record = get_json(&client, &service.url(&format!("/runs/{run}"))).await;
        if record["steps"][0]["status"] == "running" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the step never started: {record}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopping = Instant::now();
    let status = service.terminate().await;
    let took = stopping.elapsed();
    assert!(status.success(), "{status}; log:\n{}", service.log());
    assert!(
        took < Duration::from_secs(30),
        "shutting down took {took:?}"
    );
    let events = tokio::time::timeout(PATIENCE, reader)
        .await
        .unwrap()
        .unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.event, "run-finished", "{events:?}");
    assert_eq!(last.data["status"], "cancelled", "{events:?}");
    let log = service.log();
    assert!(log.contains("cancelled=1"), "{log}");
}

#[test]
fn a_non_loopback_address_is_refused_unless_allowed() {
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_flow-service"))
        .args(["--addr", "0.0.0.0:0", "--data-dir"])
        .arg(home.path().join("data"))
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0"),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-remote"), "{stderr}");
    assert!(
        !home.path().join("data").exists(),
        "nothing is made before the address is checked"
    );
}
