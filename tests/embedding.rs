//! The engine as a library, the way a service embeds it: builder, registered
//! plugins, events, cancellation, the compiled-component cache.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flow_engine::CacheOutcome;
use flow_engine::{CancelFlag, Engine, EngineError, Event, RunOptions};
use flow_pipeline::PluginRef;
use flow_store::{RunStatus, StepStatus, Store};

fn test_plugin(name: &str) -> Vec<u8> {
    let path = Path::new(env!("FLOW_TEST_PLUGIN_DIR")).join(format!("flow_plugin_{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}

fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Event>) -> Vec<Event> {
    let mut events = Vec::new();
    while let Ok(event) = rx.try_recv() {
        events.push(event);
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_a_pipeline_and_reports_events_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(
        tmp.path(),
        "flow.yaml",
        "version: 1\nname: hello\ninputs:\n  who: { type: string, default: world }\nsteps:\n  greet:\n    uses: echo\n    with: { message: \"hi ${{ inputs.who }}\" }\n  shout:\n    uses: echo\n    needs: [greet]\n    with: { message: \"${{ steps.greet.outputs.message }}!\" }\n",
    );
    let engine = Engine::builder().jobs(2).build().unwrap();
    let pipeline = engine.load_pipeline(&file).await.unwrap();
    let store = Store::open(tmp.path().join(".flow")).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let options = RunOptions::new(store.clone())
        .inputs(vec![("who".into(), "flow".into())])
        .events(tx);
    let summary = engine.run(&pipeline, options).await.unwrap();

    assert_eq!(summary.run.status, RunStatus::Succeeded);
    assert_eq!(summary.steps[1].outputs["message"], "hi flow!");
    let kinds: Vec<String> = drain(&mut rx)
        .iter()
        .map(|e| match e {
            Event::RunStarted { .. } => "run-started".to_string(),
            Event::StepStarted { step, .. } => format!("{step} started"),
            Event::StepFinished { step, status, .. } => format!("{step} {status}"),
            Event::RunFinished { status, .. } => format!("run {status}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "run-started",
            "greet started",
            "greet succeeded",
            "shout started",
            "shout succeeded",
            "run succeeded"
        ]
    );
    // What was recorded is what was reported.
    let recorded = store.steps(&summary.run.id).unwrap();
    assert_eq!(recorded, summary.steps);
    let digest = recorded[0].plugin_digest.as_deref().unwrap();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_plugin_is_a_built_in() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(
        tmp.path(),
        "flow.yaml",
        "version: 1\nname: custom\nsteps:\n  probe:\n    uses: fs-probe\n    with: { write: made.txt, content: yes }\n",
    );
    let engine = Engine::builder()
        .register_plugin("fs-probe", test_plugin("fs_probe"))
        .build()
        .unwrap();
    assert_eq!(
        engine.registry().names().collect::<Vec<_>>(),
        [
            "build", "checkout", "echo", "fs-probe", "publish", "scan", "sign"
        ]
    );
    let pipeline = engine.load_pipeline(&file).await.unwrap();
    let workspace = tmp.path().join("ws");
    let store = Store::open(tmp.path().join(".flow")).unwrap();
    let summary = engine
        .run(
            &pipeline,
            RunOptions::new(store.clone()).workspace(&workspace),
        )
        .await
        .unwrap();
    assert_eq!(
        summary.run.status,
        RunStatus::Succeeded,
        "{:?}",
        summary.steps
    );
    assert_eq!(
        std::fs::read_to_string(workspace.join("made.txt")).unwrap(),
        "yes"
    );
    // What it made is recorded with it, by content, and kept in the object store.
    let changes = store.step_changes(&summary.run.id, 0).unwrap().unwrap();
    let Some(flow_store::Change::Put {
        entry: flow_store::Entry::File { sha256, size, .. },
    }) = changes.get("made.txt")
    else {
        panic!("made.txt in {changes:?}");
    };
    assert_eq!(*size, 3);
    let objects = flow_store::Objects::open(store.dir().join("objects")).unwrap();
    assert!(objects.verify(sha256).unwrap());
    // The step ran in its own view of the workspace, in the data dir.
    let view = tmp
        .path()
        .join(".flow/views")
        .canonicalize()
        .unwrap()
        .join(summary.run.id.as_str())
        .join("0");
    assert_eq!(summary.steps[0].outputs["cwd"], view.display().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_a_busy_step_and_records_the_run_cancelled() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(
        tmp.path(),
        "flow.yaml",
        "version: 1\nname: spin\nsteps:\n  spin:\n    uses: misbehave\n    with: { mode: loop }\n    timeout: 60s\n  after:\n    uses: echo\n    needs: [spin]\n    with: { x: y }\n",
    );
    let engine = Engine::builder()
        .register_plugin("misbehave", test_plugin("misbehave"))
        .build()
        .unwrap();
    let pipeline = engine.load_pipeline(&file).await.unwrap();
    let store = Store::open(tmp.path().join(".flow")).unwrap();
    let cancel = CancelFlag::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let trigger = cancel.clone();
    let watcher = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if matches!(event, Event::StepStarted { .. }) {
                trigger.cancel();
                return Instant::now();
            }
        }
        panic!("the step never started");
    });
    let summary = engine
        .run(&pipeline, RunOptions::new(store).cancel(cancel).events(tx))
        .await
        .unwrap();
    let cancelled_at = watcher.await.unwrap();
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(5),
        "cancellation took {:?}",
        cancelled_at.elapsed()
    );
    assert_eq!(summary.run.status, RunStatus::Cancelled);
    assert_eq!(summary.steps[0].status, StepStatus::Cancelled);
    assert_eq!(summary.steps[0].reason.as_deref(), Some("cancelled"));
    assert_eq!(summary.steps[1].status, StepStatus::Cancelled);
    assert_eq!(
        summary.steps[1].reason.as_deref(),
        Some("the run was cancelled before the step started")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_engine_loads_compiled_plugins_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let echo = PluginRef::Builtin {
        name: "echo".into(),
        pin: None,
    };
    // Engines that share a cache share the key that authenticates it, kept apart.
    let key = flow_engine::CacheKey::load_or_create(&tmp.path().join("keys/cache.key")).unwrap();
    let engine = || {
        Engine::builder()
            .cache_dir(&cache)
            .cache_key(key.clone())
            .build()
            .unwrap()
    };
    let first = engine();
    let bytes = first.registry().bytes(&echo).unwrap().into_owned();
    assert_eq!(
        first.load_plugin("echo", &bytes).await.unwrap().cache,
        CacheOutcome::Compiled
    );
    let files: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].to_string_lossy().into_owned();
    let digest = flow_engine::PluginDigest::of(&bytes).hex();
    assert!(
        name.starts_with(&digest) && name.ends_with(".cwasm"),
        "{name}"
    );
    drop(first);

    let second = engine();
    let plugin = second.load_plugin("echo", &bytes).await.unwrap();
    assert_eq!(plugin.cache, CacheOutcome::Hit);
    assert_eq!(plugin.description.name, "echo");

    // An engine with another key (by default, a key of its own) trusts none of it.
    let stranger = Engine::builder().cache_dir(&cache).build().unwrap();
    assert_eq!(
        stranger.load_plugin("echo", &bytes).await.unwrap().cache,
        CacheOutcome::Compiled
    );
    let _ = engine().load_plugin("echo", &bytes).await.unwrap();

    // A damaged cache file is not trusted blindly: it is recompiled.
    std::fs::write(cache.join(&name), b"not a compiled component").unwrap();
    let third = engine();
    assert_eq!(
        third.load_plugin("echo", &bytes).await.unwrap().cache,
        CacheOutcome::Compiled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_wasm_and_foreign_components_are_refused_with_a_reason() {
    let engine = Engine::builder().build().unwrap();
    let err = engine
        .load_plugin("./junk.wasm", b"junk")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "./junk.wasm is not a valid flow plugin: the file is not WebAssembly (no `\\0asm` header)"
    );
    // A valid core module, but not a component.
    let module = b"\0asm\x01\0\0\0";
    let err = engine
        .load_plugin("./core.wasm", module)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("./core.wasm is not a valid flow plugin: "),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_invalid_and_nothing_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(
        tmp.path(),
        "flow.yaml",
        "version: 1\nname: typed\ninputs:\n  count: { type: integer }\nsteps:\n  a:\n    uses: echo\n    with: { n: \"${{ inputs.count }}\" }\n",
    );
    let engine = Engine::builder().build().unwrap();
    let pipeline = engine.load_pipeline(&file).await.unwrap();
    let store = Store::open(tmp.path().join(".flow")).unwrap();
    let options = RunOptions::new(store.clone()).inputs(vec![("count".into(), "many".into())]);
    match engine.run(&pipeline, options).await {
        Err(EngineError::Invalid(diagnostics)) => {
            let text = diagnostics.render();
            assert!(text.contains("count"), "{text}");
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
    assert!(store.runs(None).unwrap().is_empty(), "nothing was recorded");
}

/// A pipeline resolved from templates through the engine records the chain in every
/// step's provenance, and `flow verify --policy` checks the run against the templates'
/// own declarations, found by digest in the cache or a `--template-dir`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_from_templates_records_the_chain_and_verifies_against_a_policy() {
    use flow_engine::catalog::{cached_template_dir, template_digest};
    use flow_engine::verification;

    let tmp = tempfile::tempdir().unwrap();
    let file = write(
        tmp.path(),
        "flow.yaml",
        "version: 1\nextends: acme/secure-release@^1.4\ncatalogs: [{ path: catalog }]\n",
    );
    // The two templates of the chain: acme/secure-release (nearest) extends acme/base.
    let release_dir = tmp.path().join("catalog/secure-release");
    let base_dir = tmp.path().join("catalog/base");
    std::fs::create_dir_all(&release_dir).unwrap();
    std::fs::create_dir_all(&base_dir).unwrap();
    write(
        &release_dir,
        "template.yaml",
        "template: 1\nid: acme/secure-release\nversion: 1.4.0\nextends: acme/base@^2\ninterfaces:\n  scan: { params: { message: { type: string } }, outputs: [message] }\n  publish: { params: { message: { type: string } }, outputs: [message] }\nbindings: { scan: echo, publish: echo }\nfill:\n  release:\n    scan: { sealed: [uses], uses: interface:scan, with: { message: s } }\n    sign: { sealed: true, uses: echo, needs: [scan], with: { message: g } }\n    publish: { uses: interface:publish, needs: [sign], with: { message: p } }\n",
    );
    write(
        &base_dir,
        "template.yaml",
        "template: 1\nid: acme/base\nversion: 2.0.0\nname: release\nslots:\n  release: { required: true, needs: [checkout] }\nsteps:\n  checkout: { sealed: true, uses: echo, with: { message: c } }\n",
    );
    let release_sha = template_digest(&release_dir).unwrap();
    let base_sha = template_digest(&base_dir).unwrap();

    // Resolving keeps a copy of every template used in the cache, by digest.
    let cache = tmp.path().join("cache");
    let engine = Engine::builder().jobs(2).cache_dir(&cache).build().unwrap();
    let pipeline = engine.load_pipeline(&file).await.unwrap();
    let names: Vec<String> = pipeline.plan.templates.iter().map(|t| t.name()).collect();
    assert_eq!(names, ["acme/secure-release@1.4.0", "acme/base@2.0.0"]);
    for sha in [&release_sha, &base_sha] {
        assert_eq!(
            template_digest(&cached_template_dir(&cache, sha)).unwrap(),
            *sha
        );
    }
    // The base template is then only given with --template-dir.
    std::fs::remove_dir_all(cached_template_dir(&cache, &base_sha)).unwrap();
    let data = tmp.path().join(".flow");
    let (run_id, echo_digest) = {
        let store = Store::open(&data).unwrap();
        let key = std::sync::Arc::new(flow_engine::SigningKey::from_seed(&[9; 32]));
        let summary = engine
            .run(&pipeline, RunOptions::new(store.clone()).signing_key(key))
            .await
            .unwrap();
        assert_eq!(summary.run.status, RunStatus::Succeeded);
        let digest = summary.steps[0].plugin_digest.clone().unwrap();
        (summary.run.id.to_string(), digest)
    };

    // What `flow attest export` and `flow verify --policy` do, through the library.
    let store = Store::open(&data).unwrap();
    let run = store.resolve(&run_id).unwrap();
    let export = tmp.path().join("proof");
    let bundle = verification::export(&store, &run, &export).unwrap();
    assert!(verification::verify(&bundle, None).is_ok());

    // What each step's statement records.
    let statement: serde_json::Value = {
        let envelope: serde_json::Value =
            serde_json::from_slice(&std::fs::read(export.join("scan.intoto.json")).unwrap())
                .unwrap();
        use base64::Engine as _;
        let payload = base64::engine::general_purpose::STANDARD
            .decode(envelope["payload"].as_str().unwrap())
            .unwrap();
        serde_json::from_slice(&payload).unwrap()
    };
    let build = &statement["predicate"]["buildDefinition"];
    assert_eq!(
        build["internalParameters"]["template"],
        serde_json::json!({
            "chain": [
                {"id": "acme/secure-release", "version": "1.4.0", "sha256": release_sha},
                {"id": "acme/base", "version": "2.0.0", "sha256": base_sha},
            ],
            "declaredBy": "acme/secure-release@1.4.0",
            "sealed": true,
            "slot": "release",
            "interface": "scan",
        })
    );
    let dependencies = build["resolvedDependencies"].as_array().unwrap();
    for (id, version, sha) in [
        ("acme/secure-release", "1.4.0", &release_sha),
        ("acme/base", "2.0.0", &base_sha),
    ] {
        let expected = serde_json::json!({"uri": format!("flow-template:{id}@{version}"), "name": id, "digest": {"sha256": sha}});
        assert!(dependencies.contains(&expected), "{dependencies:#?}");
    }

    let policy = |versions: &str, approved: &str| {
        let file = write(
            tmp.path(),
            "policy.yaml",
            &format!(
                "policy: 1\ntemplate: acme/secure-release\nversions: \"{versions}\"\napproved-plugins: {{ scan: [{approved}] }}\nbefore: [publish]\n"
            ),
        );
        verification::Policy::load(&file)
    };
    // The base template only from a directory given; the cache holds the other.
    let with_base = |policy: verification::Policy| {
        verification::PolicyCheck::new(policy, Some(cache.clone()), std::slice::from_ref(&base_dir))
            .unwrap()
            .evaluate(&bundle)
            .unwrap()
    };
    let lines = |evaluation: &verification::Evaluation| {
        evaluation
            .checks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let evaluation = with_base(policy("^1.2", &echo_digest).unwrap());
    assert!(evaluation.passed(), "{}", lines(&evaluation));
    assert_eq!(evaluation.checks.len(), 8);
    assert!(
        lines(&evaluation).contains(&format!(
            "ok    approved  sealed step `scan` (plugin echo {echo_digest}) runs an approved `scan`"
        )),
        "{}",
        lines(&evaluation)
    );
    // The same from the export.
    let exported = verification::read_export(&export).unwrap();
    assert!(verification::verify(&exported, None).is_ok());
    let from_export = verification::PolicyCheck::new(
        policy("^1.2", &echo_digest).unwrap(),
        Some(cache.clone()),
        std::slice::from_ref(&base_dir),
    )
    .unwrap()
    .evaluate(&exported)
    .unwrap();
    assert!(from_export.passed());

    // Without the base template, it says which one is missing.
    let without = verification::PolicyCheck::new(
        policy("^1.2", &echo_digest).unwrap(),
        Some(cache.clone()),
        &[],
    )
    .unwrap()
    .evaluate(&bundle)
    .unwrap();
    assert!(!without.passed());
    assert!(
        lines(&without).contains(&format!(
            "template acme/base@2.0.0 (sha256 {base_sha}) is missing"
        )),
        "{}",
        lines(&without)
    );
    // Another version, another scanner: the policy fails.
    let other_version = with_base(policy("^2", &echo_digest).unwrap());
    assert!(!other_version.passed());
    assert!(
        lines(&other_version)
            .contains("was not resolved from template acme/secure-release at versions ^2"),
        "{}",
        lines(&other_version)
    );
    let other_scanner = with_base(policy("^1", &format!("sha256:{}", "0".repeat(64))).unwrap());
    assert!(
        lines(&other_scanner).contains("runs a `scan` that is not approved"),
        "{}",
        lines(&other_scanner)
    );
    // A bad policy is reported at its place.
    let bad = policy("^1", "sha256:nope").unwrap_err().render();
    assert!(
        bad.contains("policy.yaml:4:28: error: `sha256:nope` is not a sha256 digest"),
        "{bad}"
    );
    // The reference tools accept the export with the template records.
    let Some(venv) = std::env::var_os("FLOW_INTOTO_VENV").filter(|v| !v.is_empty()) else {
        eprintln!("NOT RUN: FLOW_INTOTO_VENV is not set (in-toto-verify on a run from templates)");
        return;
    };
    let venv = PathBuf::from(venv);
    let out = std::process::Command::new(venv.join("bin/in-toto-verify"))
        .arg("--layout")
        .arg(export.join("root.layout"))
        .arg("--verification-keys")
        .arg(export.join("owner.pub"))
        .arg("--link-dir")
        .arg(&export)
        .current_dir(&export)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("provenance/tests/python/check_statement.py");
    let out = std::process::Command::new(venv.join("bin/python"))
        .arg(script)
        .arg(export.join("owner.pub"))
        .arg(export.join("scan.intoto.json"))
        .arg(export.join("publish.intoto.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_given_as_text_runs_within_the_engine_s_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::builder().jobs(2).build().unwrap();
    let pipeline = engine
        .load_pipeline_text(
            "version: 1\nname: inline\nsteps:\n  greet:\n    uses: echo\n    with: { message: hi }\n",
            "inline.yaml",
            tmp.path(),
        )
        .await
        .unwrap();
    let store = Store::open(tmp.path().join("data")).unwrap();
    let summary = engine
        .run(&pipeline, RunOptions::new(store.clone()))
        .await
        .unwrap();
    assert_eq!(summary.run.status, RunStatus::Succeeded);
    assert_eq!(summary.steps[0].outputs["message"], "hi");
    // Problems point into the text, by the name it was given.
    let err = engine
        .load_pipeline_text(
            "version: 1\nname: inline\nsteps:\n  greet:\n    uses: ehco\n",
            "inline.yaml",
            tmp.path(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("inline.yaml:5:11: error: unknown plugin `ehco`"),
        "{err}"
    );
    // A run may not ask for more steps at once than the engine's pool holds.
    let err = engine
        .run(&pipeline, RunOptions::new(store).jobs(8))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("this run asks for 8 steps at once, but the engine was built for at most 2"),
        "{err}"
    );
}

/// A service runs loading and running on any task: the futures are `Send`.
#[test]
fn loading_and_running_are_send() {
    fn assert_send<T: Send>(_: T) {}
    let engine = Engine::builder().jobs(1).build().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    assert_send(engine.load_pipeline(tmp.path()));
    assert_send(engine.load_pipeline_text("", "x.yaml", tmp.path()));
    if let Ok(store) = Store::open(tmp.path().join("data")) {
        let loaded: Option<flow_engine::LoadedPipeline> = None;
        if let Some(pipeline) = &loaded {
            assert_send(engine.run(pipeline, RunOptions::new(store)));
        }
    }
}

/// Steps that start at once with a plugin not loaded yet compile it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_loads_compile_a_plugin_once() {
    let engine = std::sync::Arc::new(Engine::builder().jobs(2).build().unwrap());
    let echo = PluginRef::Builtin {
        name: "echo".into(),
        pin: None,
    };
    let bytes: std::sync::Arc<[u8]> = engine.registry().bytes(&echo).unwrap().into_owned().into();
    let loads: Vec<_> = (0..4)
        .map(|i| {
            let (engine, bytes) = (engine.clone(), bytes.clone());
            tokio::spawn(async move { engine.load_plugin(&format!("echo #{i}"), &bytes).await })
        })
        .collect();
    let mut plugins = Vec::new();
    for load in loads {
        plugins.push(load.await.unwrap().unwrap());
    }
    for plugin in &plugins[1..] {
        assert!(
            std::sync::Arc::ptr_eq(plugin, &plugins[0]),
            "compiled more than once"
        );
    }
}

/// Many runs at once in one engine share its `jobs`: their steps wait for a slot
/// (never more running than the engine holds, whatever each run asks for), and
/// every run ends with its own results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_share_the_engine_s_step_slots() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = std::sync::Arc::new(Engine::builder().jobs(2).build().unwrap());
    let pipeline = engine
        .load_pipeline_text(
            "version: 1\nname: fan\ninputs:\n  token: { type: string }\nsteps:\n  a: { uses: echo, with: { message: \"a ${{ inputs.token }}\" } }\n  b: { uses: echo, with: { message: \"b ${{ inputs.token }}\" } }\n  c:\n    uses: echo\n    needs: [a, b]\n    with: { message: \"${{ steps.a.outputs.message }} ${{ steps.b.outputs.message }}\" }\n",
            "fan.yaml",
            tmp.path(),
        )
        .await
        .unwrap();
    let store = Store::open(tmp.path().join("data")).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let runs: Vec<_> = (0..24)
        .map(|i| {
            let (engine, pipeline, store, tx) =
                (engine.clone(), pipeline.clone(), store.clone(), tx.clone());
            tokio::spawn(async move {
                let options = RunOptions::new(store)
                    .inputs(vec![("token".into(), format!("t{i}"))])
                    .events(tx);
                (i, engine.run(&pipeline, options).await)
            })
        })
        .collect();
    drop(tx);
    for run in runs {
        let (i, summary) = run.await.unwrap();
        let summary = summary.unwrap();
        assert_eq!(summary.run.status, RunStatus::Succeeded, "run {i}");
        assert_eq!(
            summary.steps[2].outputs["message"],
            format!("a t{i} b t{i}")
        );
    }
    // Started and finished events, in the order the engine sent them: at no point
    // were more than two steps between the two.
    let (mut now, mut most, mut started) = (0usize, 0usize, 0usize);
    while let Some(event) = rx.recv().await {
        match event {
            Event::StepStarted { .. } => {
                now += 1;
                started += 1;
                most = most.max(now);
            }
            Event::StepFinished { .. } => now -= 1,
            _ => {}
        }
    }
    assert_eq!(started, 24 * 3);
    assert!(most <= 2, "{most} steps ran at once in an engine of 2 jobs");
    assert_eq!(store.runs(None).unwrap().len(), 24);
}
