//! `flow run --events-to`: where the run's CDEvents go (the flags, then every config's
//! `events-to:`), and what was delivered, said at the end.

use std::time::Duration;

use flow_engine::{DeliveryOptions, EventDelivery, EventTarget};

/// The most `flow run` waits, after the run, for its events to be delivered.
pub(crate) const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// Starts delivering to the targets of `--events-to` and of the configs; `None` when
/// there are none. The error names the bad value and where it was written.
pub(crate) fn start(
    flags: &[String],
    configs: &[(std::path::PathBuf, flow_pipeline::Config)],
) -> Result<Option<EventDelivery>, String> {
    let mut targets: Vec<EventTarget> = Vec::new();
    for (path, config) in configs {
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        for text in &config.events_to {
            // Like the config's other paths, a relative file is relative to the config.
            let text = match text.strip_prefix("file:") {
                Some(file) if !file.is_empty() && !file.starts_with('/') => {
                    format!("file:{}", base.join(file).display())
                }
                _ => text.clone(),
            };
            let target = EventTarget::parse(&text)
                .map_err(|e| format!("error: {}: events-to: {e}", path.display()))?;
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
    }
    for text in flags {
        let target = EventTarget::parse(text).map_err(|e| format!("error: --events-to: {e}"))?;
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    if targets.is_empty() {
        return Ok(None);
    }
    EventDelivery::start(targets, DeliveryOptions::default())
        .map(Some)
        .map_err(|e| format!("error: {e}"))
}

/// Waits (at most [`FLUSH_WAIT`]) for what is queued, then says per target what was
/// sent and dropped: on stderr, and with `--json` also as a line on stdout.
pub(crate) async fn finish(delivery: &EventDelivery, json: bool) {
    for report in delivery.finish(FLUSH_WAIT).await {
        eprintln!("events: {report}");
        if json {
            outln!(
                "{}",
                serde_json::json!({
                    "event": "events-delivered",
                    "target": report.target,
                    "sent": report.sent,
                    "dropped": report.dropped_total(),
                    "reasons": report.dropped,
                })
            );
        }
    }
}
