//! The runs this process started: each one's events, kept so that any number of
//! clients can read them from the start, and each one's cancel flag, for shutdown.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use flow_engine::{CancelFlag, Event};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

/// How many finished runs keep their events in memory; older ones are forgotten
/// (their records stay in the store).
pub const KEPT_FINISHED_RUNS: usize = 1024;

/// One event of a run as the event stream sends it.
#[derive(Debug)]
pub struct Entry {
    /// The SSE event name: the event's `event` tag (`run-started`, ...), or
    /// `service-error` for a run the engine gave up on.
    pub kind: &'static str,
    /// The event as JSON.
    pub json: String,
    /// Whether this is the run's last event.
    pub last: bool,
}

/// What a run's event log holds so far.
#[derive(Debug, Default)]
pub struct LogState {
    /// Every event so far, in the order the engine sent them.
    pub entries: Vec<Arc<Entry>>,
    /// Whether no more events will come.
    pub closed: bool,
}

/// A run's events, from the first: appended by the task that runs it, read by every
/// client of `GET /runs/<id>/events` (each with a [`watch::Receiver`]).
#[derive(Debug)]
pub struct EventLog {
    state: watch::Sender<LogState>,
}

impl EventLog {
    /// An empty, open log.
    pub fn new() -> Arc<EventLog> {
        Arc::new(EventLog {
            state: watch::Sender::new(LogState::default()),
        })
    }

    /// Appends an event from the engine.
    pub fn push(&self, event: &Event) {
        let (kind, last) = match event {
            Event::RunStarted { .. } => ("run-started", false),
            Event::StepStarted { .. } => ("step-started", false),
            Event::StepFinished { .. } => ("step-finished", false),
            Event::StepRetrying { .. } => ("step-retrying", false),
            Event::RunFinished { .. } => ("run-finished", true),
            _ => ("event", false),
        };
        match serde_json::to_string(event) {
            Ok(json) => self.append(Entry { kind, json, last }),
            Err(error) => tracing::error!(%error, "cannot encode an event: {event:?}"),
        }
    }

    /// Appends the service's own last word on a run the engine stopped with an error
    /// after it had started (the store failed, say): readers are not left waiting for
    /// a `run-finished` that will not come.
    pub fn push_error(&self, run: &str, message: &str) {
        let json = serde_json::json!({ "event": "service-error", "run": run, "error": message });
        self.append(Entry {
            kind: "service-error",
            json: json.to_string(),
            last: true,
        });
    }

    fn append(&self, entry: Entry) {
        self.state
            .send_modify(|state| state.entries.push(Arc::new(entry)));
    }

    /// No more events will come.
    pub fn close(&self) {
        self.state.send_modify(|state| state.closed = true);
    }

    /// A reader of the log, which sees every event appended before and after.
    pub fn subscribe(&self) -> watch::Receiver<LogState> {
        self.state.subscribe()
    }
}

/// A run admitted (see [`Runs::admit`]): its cancel flag and its place in the
/// registry of active runs.
#[derive(Debug)]
pub struct Admission {
    /// The service's number for the run, until the engine has given it an id.
    pub ticket: u64,
    /// Set on shutdown.
    pub cancel: CancelFlag,
}

#[derive(Debug, Default)]
struct Inner {
    shutting_down: bool,
    next_ticket: u64,
    /// The cancel flags of the runs under way, by ticket.
    active: HashMap<u64, CancelFlag>,
    /// The event logs of the runs this process started, by run id.
    logs: HashMap<String, Arc<EventLog>>,
    /// The finished runs whose logs are kept, oldest first.
    finished: VecDeque<String>,
}

/// Every run this process started, and the tasks that run them.
#[derive(Debug, Default)]
pub struct Runs {
    inner: Mutex<Inner>,
    tasks: TaskTracker,
}

impl Runs {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the maps as consistent as before it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The tasks that run the runs, to spawn one on and to wait for at shutdown.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Lets a new run start, unless the service is shutting down.
    pub fn admit(&self) -> Option<Admission> {
        let mut inner = self.lock();
        if inner.shutting_down {
            return None;
        }
        inner.next_ticket += 1;
        let ticket = inner.next_ticket;
        let cancel = CancelFlag::new();
        inner.active.insert(ticket, cancel.clone());
        Some(Admission { ticket, cancel })
    }

    /// Makes a started run's events readable by its id.
    pub fn register(&self, run: &str, log: Arc<EventLog>) {
        self.lock().logs.insert(run.to_owned(), log);
    }

    /// A run ended (`run` is `None` when it never started); forgets the events of the
    /// oldest finished runs beyond [`KEPT_FINISHED_RUNS`].
    pub fn finish(&self, ticket: u64, run: Option<&str>) {
        let mut inner = self.lock();
        inner.active.remove(&ticket);
        if let Some(run) = run {
            inner.finished.push_back(run.to_owned());
            while inner.finished.len() > KEPT_FINISHED_RUNS {
                if let Some(old) = inner.finished.pop_front() {
                    inner.logs.remove(&old);
                }
            }
        }
    }

    /// The events of a run this process started (and has not forgotten).
    pub fn log(&self, run: &str) -> Option<Arc<EventLog>> {
        self.lock().logs.get(run).cloned()
    }

    /// Whether new runs are still admitted.
    pub fn accepting(&self) -> bool {
        !self.lock().shutting_down
    }

    /// Admits no more runs, cancels those under way and closes the task tracker;
    /// returns how many runs were cancelled.
    pub fn shut_down(&self) -> usize {
        let mut inner = self.lock();
        inner.shutting_down = true;
        for cancel in inner.active.values() {
            cancel.cancel();
        }
        self.tasks.close();
        inner.active.len()
    }
}
