//! `flow run --events-to`: the run's CDEvents 0.5.1, as CloudEvents over HTTP (binary
//! mode), as JSON lines in a file and on a NATS subject; each one valid against its
//! schema (`tests/data/cdevents-0.5.1`); a receiver that is down or slow changes
//! neither the run's outcome nor, beyond the bounded wait, its duration.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::session::{Session, repo_root};

const TWO_STEPS: &str = "version: 1
name: two-steps
steps:
  seed:
    uses: ./fs_probe.wasm
    with: { write: seed.txt, content: seed }
  after:
    uses: ./fs_probe.wasm
    needs: [seed]
    with: { list: . }
";

const FAILS: &str = "version: 1\nname: fails\nsteps:\n  boom:\n    uses: ./misbehave.wasm\n    with: { mode: fail }\n";

/// The CDEvents schemas of the test data, by `$id`, and the event type each main one
/// is for. `check` validates with [`validate`], a small JSON Schema (draft 2020-12)
/// validator of the keywords these schemas use; any other keyword fails the test.
struct Schemas {
    by_id: BTreeMap<String, Value>,
    by_type: BTreeMap<String, String>,
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/cdevents-0.5.1")
}

impl Schemas {
    fn load() -> Schemas {
        let dir = data_dir().join("schemas");
        let mut by_id = BTreeMap::new();
        let mut by_type = BTreeMap::new();
        for dir in [dir.clone(), dir.join("links")] {
            for entry in std::fs::read_dir(&dir).expect("the CDEvents schemas") {
                let path = entry.unwrap().path();
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let schema: Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                assert_eq!(
                    schema["$schema"],
                    "https://json-schema.org/draft/2020-12/schema"
                );
                let id = schema["$id"].as_str().unwrap().to_owned();
                if let Some(kind) =
                    schema["properties"]["context"]["properties"]["type"]["enum"][0].as_str()
                {
                    by_type.insert(kind.to_owned(), id.clone());
                }
                by_id.insert(id, schema);
            }
        }
        assert_eq!(by_type.len(), 8, "{:?}", by_type.keys());
        Schemas { by_id, by_type }
    }

    fn errors(&self, event: &Value) -> Vec<String> {
        let Some(kind) = event["context"]["type"].as_str() else {
            return vec!["no context.type".into()];
        };
        let Some(id) = self.by_type.get(kind) else {
            return vec![format!("no schema for {kind}")];
        };
        let mut errors = Vec::new();
        validate(self, id, &self.by_id[id], event, "", &mut errors);
        errors
    }

    /// Asserts that `event` is valid against the schema of its type.
    fn check(&self, event: &Value) {
        let errors = self.errors(event);
        assert!(errors.is_empty(), "{errors:#?}\n{event:#}");
        assert_eq!(event["context"]["specversion"], "0.5.1");
    }
}

/// Validates `instance` (at `path`) against `schema`, whose base URI is `base`.
fn validate(
    schemas: &Schemas,
    base: &str,
    schema: &Value,
    instance: &Value,
    path: &str,
    errors: &mut Vec<String>,
) {
    let Some(keywords) = schema.as_object() else {
        if schema == &Value::Bool(false) {
            errors.push(format!("{path}: not allowed"));
        }
        return;
    };
    let base = keywords.get("$id").and_then(Value::as_str).unwrap_or(base);
    for (keyword, value) in keywords {
        match keyword.as_str() {
            "$schema" | "$id" | "default" | "description" | "contentEncoding" => {}
            "$ref" => {
                let reference = value.as_str().unwrap();
                let target = if reference.contains("://") {
                    reference.to_owned()
                } else {
                    format!("{}/{reference}", &base[..base.rfind('/').unwrap()])
                };
                let resolved = schemas
                    .by_id
                    .get(&target)
                    .unwrap_or_else(|| panic!("unresolved $ref {target}"));
                validate(schemas, &target, resolved, instance, path, errors);
            }
            "type" => {
                let types: Vec<&str> = match value {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
                    _ => panic!("type: {value}"),
                };
                let is = |t: &str| match t {
                    "object" => instance.is_object(),
                    "array" => instance.is_array(),
                    "string" => instance.is_string(),
                    "boolean" => instance.is_boolean(),
                    "null" => instance.is_null(),
                    "number" => instance.is_number(),
                    "integer" => instance.is_i64() || instance.is_u64(),
                    other => panic!("type {other}"),
                };
                if !types.iter().any(|t| is(t)) {
                    errors.push(format!("{path}: {instance} is not of type {value}"));
                }
            }
            "properties" => {
                if let Some(object) = instance.as_object() {
                    for (name, sub) in value.as_object().unwrap() {
                        if let Some(v) = object.get(name) {
                            validate(schemas, base, sub, v, &format!("{path}/{name}"), errors);
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(object) = instance.as_object() {
                    let declared = keywords.get("properties").and_then(Value::as_object);
                    for (name, v) in object {
                        if declared.is_none_or(|d| !d.contains_key(name)) {
                            match value {
                                Value::Bool(false) => {
                                    errors.push(format!("{path}: property `{name}` is not allowed"))
                                }
                                _ => validate(
                                    schemas,
                                    base,
                                    value,
                                    v,
                                    &format!("{path}/{name}"),
                                    errors,
                                ),
                            }
                        }
                    }
                }
            }
            "required" => {
                if let Some(object) = instance.as_object() {
                    for name in value.as_array().unwrap() {
                        let name = name.as_str().unwrap();
                        if !object.contains_key(name) {
                            errors.push(format!("{path}: `{name}` is required"));
                        }
                    }
                }
            }
            "enum" => {
                if !value.as_array().unwrap().contains(instance) {
                    errors.push(format!("{path}: {instance} is not one of {value}"));
                }
            }
            "minLength" => {
                if let Some(text) = instance.as_str()
                    && (text.chars().count() as u64) < value.as_u64().unwrap()
                {
                    errors.push(format!("{path}: {instance} is shorter than {value}"));
                }
            }
            "format" => {
                if let Some(text) = instance.as_str() {
                    let format = value.as_str().unwrap();
                    if !valid_format(format, text) {
                        errors.push(format!("{path}: {instance} is not a {format}"));
                    }
                }
            }
            "items" => {
                if let Some(items) = instance.as_array() {
                    for (i, item) in items.iter().enumerate() {
                        validate(schemas, base, value, item, &format!("{path}/{i}"), errors);
                    }
                }
            }
            "oneOf" | "anyOf" => {
                let passing = value
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|sub| {
                        let mut sub_errors = Vec::new();
                        validate(schemas, base, sub, instance, path, &mut sub_errors);
                        sub_errors.is_empty()
                    })
                    .count();
                let ok = if keyword == "oneOf" {
                    passing == 1
                } else {
                    passing >= 1
                };
                if !ok {
                    errors.push(format!("{path}: {passing} of the {keyword} schemas match"));
                }
            }
            other => panic!("a keyword this validator does not know: {other}"),
        }
    }
}

/// The formats the schemas use: `date-time` (RFC 3339), `uri` (absolute, RFC 3986),
/// `uri-reference`.
fn valid_format(format: &str, text: &str) -> bool {
    let uri_chars = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c))
    };
    match format {
        "uri" => {
            let Some((scheme, _)) = text.split_once(':') else {
                return false;
            };
            uri_chars(text)
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        "uri-reference" => uri_chars(text),
        "date-time" => {
            // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)
            let b = text.as_bytes();
            let digits = |r: std::ops::Range<usize>| {
                b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit))
            };
            let mut ok = b.len() >= 20
                && digits(0..4)
                && b[4] == b'-'
                && digits(5..7)
                && b[7] == b'-'
                && digits(8..10)
                && matches!(b[10], b'T' | b't')
                && digits(11..13)
                && b[13] == b':'
                && digits(14..16)
                && b[16] == b':'
                && digits(17..19);
            if ok {
                let mut rest = &text[19..];
                if let Some(fraction) = rest.strip_prefix('.') {
                    let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
                    ok &= n > 0;
                    rest = &fraction[n..];
                }
                let offset = rest.as_bytes();
                ok &= rest == "Z"
                    || rest == "z"
                    || (offset.len() == 6
                        && matches!(offset[0], b'+' | b'-')
                        && offset[1..3].iter().all(u8::is_ascii_digit)
                        && offset[3] == b':'
                        && offset[4..6].iter().all(u8::is_ascii_digit));
                let number = |r: std::ops::Range<usize>| text[r].parse::<u32>().unwrap_or(99);
                ok &= (1..=12).contains(&number(5..7))
                    && (1..=31).contains(&number(8..10))
                    && number(11..13) < 24
                    && number(14..16) < 60
                    && number(17..19) < 61;
            }
            ok
        }
        other => panic!("a format this validator does not know: {other}"),
    }
}

/// The validator against the CDEvents project's conformance examples (valid), and
/// against broken copies of them (each invalid).
#[test]
fn the_schema_validator_accepts_the_conformance_examples_and_rejects_broken_ones() {
    let schemas = Schemas::load();
    let dir = data_dir().join("conformance");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let example: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let errors = schemas.errors(&example);
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        checked += 1;
        let broken = |change: &dyn Fn(&mut Value)| {
            let mut copy = example.clone();
            change(&mut copy);
            copy
        };
        for (what, copy) in [
            (
                "an unknown property",
                broken(&|e| e["context"]["extra"] = "x".into()),
            ),
            (
                "no id",
                broken(&|e| {
                    e["context"].as_object_mut().unwrap().remove("id");
                }),
            ),
            ("an empty id", broken(&|e| e["context"]["id"] = "".into())),
            (
                "a number for a string",
                broken(&|e| e["subject"]["id"] = 7.into()),
            ),
            (
                "a bad timestamp",
                broken(&|e| e["context"]["timestamp"] = "2023-03-20 14:27".into()),
            ),
            (
                "a bad source",
                broken(&|e| e["context"]["source"] = "a b".into()),
            ),
            (
                "a bad link",
                broken(&|e| e["context"]["links"] = serde_json::json!([{"linkType": "NONE"}])),
            ),
        ] {
            let errors = schemas.errors(&copy);
            assert!(!errors.is_empty(), "{}: {what} passed", path.display());
        }
    }
    assert_eq!(checked, 8);
    let date = |t: &str| valid_format("date-time", t);
    assert!(date("2026-12-03T14:00:00.123Z") && date("2026-12-03T14:00:00+01:00"));
    assert!(
        !date("2026-13-03T14:00:00Z")
            && !date("2026-12-03T14:00:00")
            && !date("2026-12-03T14:00:00.Z")
    );
    assert!(valid_format("uri", "urn:flow:run:1") && !valid_format("uri", "/flow/x"));
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            // `dev.cdevents.taskrun.started.0.3.0` -> `taskrun.started`
            let kind = e["context"]["type"].as_str().unwrap();
            let parts: Vec<&str> = kind.split('.').collect();
            format!("{}.{}", parts[2], parts[3])
        })
        .collect()
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    headers: BTreeMap<String, String>,
    body: Value,
}

/// An HTTP receiver on 127.0.0.1: answers 200 at once, or after `delay` (the slow
/// receiver); stopped, and its threads joined, when dropped.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    fn start(delay: Duration) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (got2, stop2) = (Arc::clone(&got), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut handlers = Vec::new();
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (got, stop) = (Arc::clone(&got2), Arc::clone(&stop2));
                handlers.push(std::thread::spawn(move || {
                    serve(stream, &got, &stop, delay)
                }));
            }
            for h in handlers {
                let _ = h.join();
            }
        });
        Receiver {
            port,
            got,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/events", self.port)
    }

    fn requests(&self) -> Vec<Request> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, got: &Mutex<Vec<Request>>, stop: &AtomicBool, delay: Duration) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    // The slow receiver: answers after `delay`, or when the test stops it.
    let until = Instant::now() + delay;
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
    got.lock().unwrap().push(Request {
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let mut stream = reader.into_inner();
    let _ = stream
        .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

/// A port nothing listens on.
fn refused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Asserts the run-level sequence: queued and started first, finished last, and a
/// `taskrun.started` before the `taskrun.finished` of each of `steps`.
fn assert_sequence(events: &[Value], steps: &[&str], outcome: &str) {
    let kinds = types(events);
    assert_eq!(
        kinds[..2],
        ["pipelinerun.queued", "pipelinerun.started"],
        "{kinds:?}"
    );
    assert_eq!(kinds.last().unwrap(), "pipelinerun.finished", "{kinds:?}");
    assert_eq!(
        events.last().unwrap()["subject"]["content"]["outcome"],
        outcome
    );
    let run = events[0]["subject"]["id"].as_str().unwrap();
    for step in steps {
        let position = |kind: &str| {
            events
                .iter()
                .position(|e| {
                    types(std::slice::from_ref(e))[0] == kind
                        && e["subject"]["content"]["taskName"] == *step
                })
                .unwrap_or_else(|| panic!("no {kind} for {step}: {kinds:?}"))
        };
        let (started, finished) = (position("taskrun.started"), position("taskrun.finished"));
        assert!(started < finished, "{kinds:?}");
        assert_eq!(
            events[finished]["subject"]["content"]["pipelineRun"]["id"],
            run
        );
    }
    let ids: std::collections::BTreeSet<&str> = events
        .iter()
        .map(|e| e["context"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), events.len(), "every event has its own id");
}

#[test]
fn the_release_example_sends_cdevents_over_http_and_to_a_file() {
    let Some(root) = repo_root() else { return };
    let schemas = Schemas::load();
    let receiver = Receiver::start(Duration::ZERO);
    let example = root.join("templates/examples/release/flow.yaml");
    let session = Session::new();
    let out = session
        .flow([
            "run",
            example.to_str().unwrap(),
            "--events-to",
            &receiver.url(),
            "--events-to",
            "file:events.jsonl",
        ])
        .with_toolchain()
        .env("FLOW_RELEASE_KEY", session.release_key())
        .run();
    // Its stderr says what was delivered.
    out.expect_code(0);
    let (show, _) = session.last_run();

    // The file holds the same events, one per line, in the order they were sent.
    let lines: Vec<Value> = std::fs::read_to_string(session.path("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one CDEvent per line"))
        .collect();
    let requests = receiver.requests();
    let n = lines.len();
    assert!(
        out.stderr.contains(&format!(
            "events: {n} sent to {}, 0 dropped",
            receiver.url()
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("events: {n} sent to file:events.jsonl, 0 dropped")),
        "{}",
        out.stderr
    );
    assert_eq!(requests.len(), n);
    let bodies: Vec<Value> = requests.iter().map(|r| r.body.clone()).collect();
    assert_eq!(
        bodies, lines,
        "HTTP and the file got the same events, in order"
    );

    // CloudEvents 1.0, binary mode: the context in `ce-` headers, the CDEvent as the body.
    for request in &requests {
        let h = &request.headers;
        let context = &request.body["context"];
        assert_eq!(request.path, "/events");
        assert_eq!(h["ce-specversion"], "1.0");
        assert_eq!(h["ce-id"], context["id"].as_str().unwrap());
        assert_eq!(h["ce-source"], context["source"].as_str().unwrap());
        assert_eq!(h["ce-type"], context["type"].as_str().unwrap());
        assert_eq!(h["ce-time"], context["timestamp"].as_str().unwrap());
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(context["source"], "/flow/release");
        schemas.check(&request.body);
    }

    let steps = ["checkout", "build", "scan", "sign", "publish"];
    assert_sequence(&lines, &steps, "success");
    let kinds = types(&lines);
    for step in steps {
        let finished = lines
            .iter()
            .find(|e| {
                e["subject"]["content"]["taskName"] == step
                    && types(std::slice::from_ref(e))[0] == "taskrun.finished"
            })
            .unwrap();
        assert_eq!(finished["subject"]["content"]["outcome"], "success");
    }
    // The artifact: packaged by build, signed by sign, published by publish, after each.
    let position = |kind: &str| {
        kinds
            .iter()
            .position(|k| k == kind)
            .unwrap_or_else(|| panic!("no {kind}: {kinds:?}"))
    };
    let task_finished = |step: &str| {
        lines
            .iter()
            .position(|e| {
                e["subject"]["content"]["taskName"] == step
                    && types(std::slice::from_ref(e))[0] == "taskrun.finished"
            })
            .unwrap()
    };
    assert!(task_finished("build") < position("artifact.packaged"));
    assert!(task_finished("sign") < position("artifact.signed"));
    assert!(task_finished("publish") < position("artifact.published"));
    let artifacts: Value =
        serde_json::from_str(show["steps"][1]["outputs"]["artifacts"].as_str().unwrap()).unwrap();
    let sha = artifacts[0]["sha256"].as_str().unwrap();
    let purl = format!("pkg:generic/sample?checksum=sha256:{sha}");
    let packaged = &lines[position("artifact.packaged")];
    assert_eq!(packaged["subject"]["id"], purl.as_str());
    assert_eq!(
        packaged["subject"]["content"]["change"]["id"],
        show["steps"][0]["outputs"]["commit"]
    );
    let signed = &lines[position("artifact.signed")];
    assert_eq!(signed["subject"]["id"], purl.as_str());
    assert!(
        signed["subject"]["content"]["signature"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN SSH SIGNATURE-----"),
        "{signed:#}"
    );
    let digest = show["steps"][4]["outputs"]["digest"].as_str().unwrap();
    let published = &lines[position("artifact.published")];
    // The layout `release` in the workspace (`reference` names it as the plugin saw it).
    let id = published["subject"]["id"].as_str().unwrap();
    let prefix = format!(
        "pkg:oci/release@sha256%3A{}?repository_url=",
        digest.trim_start_matches("sha256:")
    );
    assert!(
        id.starts_with(&prefix) && id.ends_with("release&tag=0.1.0"),
        "{id} for {}",
        show["steps"][4]["outputs"]["reference"]
    );
}

#[test]
fn a_receiver_that_is_down_or_slow_changes_neither_outcome_nor_more_than_the_wait() {
    let schemas = Schemas::load();
    let session = Session::new();
    session
        .plugin("fs_probe")
        .plugin("misbehave")
        .file("flow.yaml", TWO_STEPS)
        .file("fails.yaml", FAILS);
    let baseline = session.flow(["run", "flow.yaml"]).run();
    baseline.expect_success();

    // The slow receiver would answer each event after 30 s.
    let slow = Receiver::start(Duration::from_secs(30));
    let down = format!("http://127.0.0.1:{}/", refused_port());
    let out = session
        .flow([
            "--json",
            "run",
            "flow.yaml",
            "--events-to",
            &down,
            "--events-to",
            &slow.url(),
            "--events-to",
            "file:ok.jsonl",
        ])
        .run();
    // Its stderr says what was delivered.
    out.expect_code(0);
    // The bounded wait is 2 s; without it, the slow receiver alone would take minutes.
    assert!(
        out.took < baseline.took + Duration::from_secs(15),
        "{:?} against {:?} without events",
        out.took,
        baseline.took
    );
    let events: Vec<Value> = std::fs::read_to_string(session.path("ok.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for event in &events {
        schemas.check(event);
    }
    assert_sequence(&events, &["seed", "after"], "success");
    let n = events.len();
    assert_eq!(n, 7, "{:?}", types(&events));
    assert!(
        out.stderr.contains(&format!(
            "events: 0 sent to {down}, {n} dropped (connection refused)"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("events: 0 sent to {}, {n} dropped (", slow.url())),
        "{}",
        out.stderr
    );
    // --json says it too, one line per target.
    let reports: Vec<Value> = out
        .json_lines()
        .into_iter()
        .filter(|l| l["event"] == "events-delivered")
        .collect();
    assert_eq!(reports.len(), 3, "{}", out.stdout);
    assert_eq!(reports[0]["target"], down.as_str());
    assert_eq!(reports[0]["dropped"], n);
    assert_eq!(reports[0]["reasons"]["connection refused"], n);
    assert_eq!(reports[1]["sent"], 0);
    assert_eq!(reports[1]["dropped"], n);
    assert_eq!(reports[2]["sent"], n);
    drop(slow);

    // A failing run still fails, and says so in its last event.
    let failed = session
        .flow([
            "run",
            "fails.yaml",
            "--events-to",
            &down,
            "--events-to",
            "file:failed.jsonl",
        ])
        .run();
    failed.expect_code(1);
    let events: Vec<Value> = std::fs::read_to_string(session.path("failed.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for event in &events {
        schemas.check(event);
    }
    assert_sequence(&events, &["boom"], "failure");
    let boom = &events[events.len() - 2];
    assert_eq!(boom["subject"]["content"]["outcome"], "failure");
    assert!(
        boom["subject"]["content"]["errors"]
            .as_str()
            .unwrap()
            .contains("misbehave was told to fail"),
        "{boom:#}"
    );
    assert!(
        failed.stderr.contains("dropped (connection refused)"),
        "{}",
        failed.stderr
    );
}

#[test]
fn targets_come_from_the_flags_and_the_config_and_bad_ones_are_refused() {
    let session = Session::new();
    session
        .plugin("fs_probe")
        .file("flow.yaml", TWO_STEPS)
        .file("config.yaml", "events-to: [file:from-config.jsonl]\n")
        .file("bad-config.yaml", "events-to:\n  - ftp://x\n");
    let bad = session
        .flow(["run", "flow.yaml", "--events-to", "ftp://x"])
        .run();
    bad.expect_code(2);
    assert_eq!(
        bad.stderr.trim(),
        r#"error: --events-to: "ftp://x": unsupported scheme; use http://, file: or nats://"#
    );
    assert!(!session.data_dir().join("store").exists(), "nothing ran");
    let https = session
        .flow(["run", "flow.yaml", "--events-to", "https://h/"])
        .run();
    https.expect_code(2);
    assert!(
        https
            .stderr
            .contains(r#""https://h/": https is not supported"#),
        "{}",
        https.stderr
    );

    let config = session.path("bad-config.yaml");
    let bad = session
        .flow(["run", "flow.yaml"])
        .env("FLOW_CONFIG", &config)
        .run();
    bad.expect_code(2);
    assert!(
        bad.stderr.contains(&format!(
            r#"error: {}: events-to: "ftp://x": unsupported scheme"#,
            config.display()
        )),
        "{}",
        bad.stderr
    );

    // The config's targets and the flags' both get every event.
    let out = session
        .flow(["run", "flow.yaml", "--events-to", "file:from-flag.jsonl"])
        .env("FLOW_CONFIG", session.path("config.yaml"))
        .run();
    // Its stderr says what was delivered.
    out.expect_code(0);
    let read = |name: &str| std::fs::read_to_string(session.path(name)).unwrap();
    assert_eq!(read("from-config.jsonl").lines().count(), 7);
    assert_eq!(read("from-config.jsonl"), read("from-flag.jsonl"));
    // A relative file in the config is relative to the config.
    let from_config = format!("file:{}", session.path("from-config.jsonl").display());
    assert!(
        out.stderr
            .contains(&format!("events: 7 sent to {from_config}, 0 dropped")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("events: 7 sent to file:from-flag.jsonl, 0 dropped"),
        "{}",
        out.stderr
    );
}

/// A `nats-server` on 127.0.0.1, killed when dropped.
struct NatsServer {
    child: Child,
    port: u16,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nats_server() -> Option<NatsServer> {
    let program = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| {
            Command::new("sh")
                .args(["-c", "command -v nats-server"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        });
    let Some(program) = program else {
        assert!(
            std::env::var_os("CI").is_none(),
            "nats-server must be installed in CI (.ci/run installs it)"
        );
        eprintln!("NOT RUN: nats-server is not installed");
        return None;
    };
    let port = refused_port();
    let child = Command::new(program)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server");
    let server = NatsServer { child, port };
    // Ready once it accepts connections.
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(server)
}

/// A NATS subscriber over raw TCP.
struct Subscriber {
    reader: BufReader<TcpStream>,
}

impl Subscriber {
    fn subscribe(port: u16, subject: &str) -> Subscriber {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut reader = BufReader::new(stream);
        let info = Self::read_line(&mut reader);
        assert!(info.starts_with("INFO"), "{info}");
        reader
            .get_mut()
            .write_all(
                format!("CONNECT {{\"verbose\":false}}\r\nSUB {subject} 1\r\nPING\r\n").as_bytes(),
            )
            .unwrap();
        // The subscription is in place once the server answers the PING.
        while Self::read_line(&mut reader) != "PONG" {}
        Subscriber { reader }
    }

    fn read_line(reader: &mut BufReader<TcpStream>) -> String {
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .expect("a line from nats-server");
        line.trim_end().to_owned()
    }

    /// The payload of the next message.
    fn next(&mut self) -> Value {
        loop {
            let line = Self::read_line(&mut self.reader);
            if line == "PING" {
                self.reader.get_mut().write_all(b"PONG\r\n").unwrap();
                continue;
            }
            let Some(rest) = line.strip_prefix("MSG ") else {
                continue;
            };
            let size: usize = rest.split_whitespace().last().unwrap().parse().unwrap();
            let mut payload = vec![0; size + 2];
            self.reader.read_exact(&mut payload).unwrap();
            return serde_json::from_slice(&payload[..size]).unwrap();
        }
    }
}

#[test]
fn nats_subscribers_get_every_event() {
    let Some(server) = nats_server() else { return };
    let schemas = Schemas::load();
    let mut subscriber = Subscriber::subscribe(server.port, "flow.events");
    let session = Session::new();
    session.plugin("fs_probe").file("flow.yaml", TWO_STEPS);
    let target = format!("nats://127.0.0.1:{}/flow.events", server.port);
    let out = session
        .flow([
            "run",
            "flow.yaml",
            "--events-to",
            &target,
            "--events-to",
            "file:events.jsonl",
        ])
        .run();
    // Its stderr says what was delivered.
    out.expect_code(0);
    assert!(
        out.stderr
            .contains(&format!("events: 7 sent to {target}, 0 dropped")),
        "{}",
        out.stderr
    );
    let events: Vec<Value> = (0..7).map(|_| subscriber.next()).collect();
    for event in &events {
        schemas.check(event);
    }
    assert_sequence(&events, &["seed", "after"], "success");
    let file: Vec<Value> = std::fs::read_to_string(session.path("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events, file);
}
