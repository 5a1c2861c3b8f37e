//! A test plugin that misbehaves on purpose, to prove the host contains it.
//! Never shipped in the `flow` binary.

use flow_plugin_sdk::{Context, Description, Param, Plugin, StepError, export_plugin};
use serde::Deserialize;

#[derive(Deserialize)]
struct Params {
    mode: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    unit: Option<String>,
}

/// Standard base64 with padding (enough for a test plugin).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

struct Misbehave;

fn recurse(depth: u64, buf: &mut [u8; 256]) -> u64 {
    buf[(depth % 256) as usize] = depth as u8;
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    let mut next = [0u8; 256];
    recurse(depth + 1, &mut next) + u64::from(buf[0])
}

impl Plugin for Misbehave {
    type Params = Params;

    fn describe() -> Description {
        Description::new(
            "misbehave",
            env!("CARGO_PKG_VERSION"),
            "Misbehaves as told (tests only)",
        )
        .param(
            Param::string(
                "mode",
                "panic | loop | alloc | stack | read | write | fail | flaky | flood | leak | progress | ok",
            )
            .required(),
        )
        .param(Param::string("path", "the path for read and write"))
        .param(Param::string("unit", "for progress, what it counts"))
        .param(Param::integer(
            "count",
            "lines for flood; for leak, 1 fails with the value; for flaky, the attempt that succeeds",
        ))
        .param(Param::string(
            "secret",
            "the secret `leak` reads and leaks every way it can",
        ))
        .output("leaked", "what `leak` read")
        .output("content", "what `read` read")
    }

    fn run(params: Params, ctx: &mut Context) -> Result<(), StepError> {
        match params.mode.as_str() {
            "panic" => panic!("misbehave was told to panic"),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "stack" => {
                let mut buf = [0u8; 256];
                let n = recurse(0, &mut buf);
                Err(StepError::new(format!("recursion ended at {n}")))
            }
            "read" => {
                let path = params.path.ok_or("`read` needs `path`")?;
                let content = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {path}: {e}"))?;
                ctx.set_output("content", &content);
                Ok(())
            }
            "write" => {
                let path = params.path.ok_or("`write` needs `path`")?;
                std::fs::write(&path, b"written by misbehave\n")
                    .map_err(|e| format!("cannot write {path}: {e}"))?;
                Ok(())
            }
            "fail" => Err(StepError::new("misbehave was told to fail")),
            "progress" => {
                // `count` items, a millisecond each, each one reported.
                let total = params.count.unwrap_or(1000);
                let unit = params.unit.as_deref().unwrap_or("items");
                for done in 0..=total {
                    ctx.progress(done, Some(total), unit);
                    if done < total {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }
                Ok(())
            }
            "flaky" => {
                // Counts its attempts in the file at `path` (in a granted directory,
                // which outlives the step's view); fails until attempt `count`.
                let path = params.path.ok_or("`flaky` needs `path`")?;
                let done: u64 = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .unwrap_or(0);
                let attempt = done + 1;
                std::fs::write(&path, attempt.to_string())
                    .map_err(|e| format!("cannot write {path}: {e}"))?;
                std::fs::write(format!("attempt-{attempt}.txt"), b"made by this attempt\n")
                    .map_err(|e| format!("cannot write in the workspace: {e}"))?;
                println!("attempt {attempt}");
                if attempt < params.count.unwrap_or(2) {
                    return Err(StepError::new(format!("flaky attempt {attempt} failed")));
                }
                Ok(())
            }
            "flood" => {
                for i in 0..params.count.unwrap_or(100_000) {
                    println!(
                        "flood line {i} .........................................................."
                    );
                }
                Ok(())
            }
            "leak" => {
                use std::io::Write;
                let name = params.secret.ok_or("`leak` needs `secret`")?;
                let value = flow_plugin_sdk::secrets::get(&name)?;
                println!("whole: {value}");
                let (a, b) = value.split_at(value.len() / 2);
                print!("split: {a}");
                std::io::stdout().flush().ok();
                println!("{b} end");
                std::io::stdout().flush().ok();
                ctx.info(&format!("log: {value}"));
                eprintln!(
                    "Authorization: Basic {}",
                    base64(format!("user:{value}").as_bytes())
                );
                println!("{}{value}{}", "x".repeat(16 * 1024 - 3), "y".repeat(100));
                ctx.set_output("leaked", &format!("output {value}"));
                if params.count == Some(1) {
                    return Err(StepError::new(format!("failed holding {value}")));
                }
                Ok(())
            }
            "ok" => Ok(()),
            other => Err(StepError::new(format!("unknown mode `{other}`"))),
        }
    }
}

export_plugin!(Misbehave);
