//! Bounded rendering: the Tera renders one host needs, queued as a batch and run together on
//! a worker thread, each within the limits on output size and time. A render that never ends
//! is reported and left behind, not waited for.

use super::tera_diagnostic;
use crate::diagnostic::{Diagnostic, SourceLocation};
use crate::site::Site;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Duration;
use tera::{Context, Tera};

/// How much one rendered template may write, and for how long it may run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_time: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bytes: 16 << 20,
            max_time: Duration::from_secs(5),
        }
    }
}

/// The Tera renders of one host, in the order they were queued.
#[derive(Default)]
pub(crate) struct Batch {
    jobs: Vec<(String, Context)>,
}

impl Batch {
    /// Queues template `name` rendered with `ctx`; the index of its result.
    pub(crate) fn add(&mut self, name: String, ctx: Context) -> usize {
        self.jobs.push((name, ctx));
        self.jobs.len() - 1
    }
}

/// A Tera string of a role file: as written, or the index of its render in the host's batch.
pub(crate) enum Field {
    Text(String),
    Job(usize),
}

/// A batch's results, each taken once by the index [`Batch::add`] gave.
pub(crate) struct Results(Vec<Option<Result<Vec<u8>, Failure>>>);

impl Results {
    /// The bytes of render `i` (a second take is a crash: a bug of the caller).
    pub(crate) fn take(&mut self, i: usize) -> Result<Vec<u8>, Failure> {
        self.0
            .get_mut(i)
            .and_then(Option::take)
            .unwrap_or(Err(Failure::Crashed))
    }

    /// A field's text: as written, or its render (as UTF-8, lossily).
    pub(crate) fn text(&mut self, field: Field) -> Result<String, Failure> {
        match field {
            Field::Text(t) => Ok(t),
            Field::Job(i) => self
                .take(i)
                .map(|b| String::from_utf8(b).unwrap_or_else(|e| lossy(e.as_bytes()))),
        }
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What a worker has finished, in order; `None` once the batch gave up on it.
type Done = Arc<Mutex<Option<Vec<Result<Vec<u8>, Failure>>>>>;

/// Runs every render of `batch`, in order, within `limits`. The calling thread's worker renders
/// them all (one wake-up per host, not per template); when a render runs past the time limit or
/// crashes the engine, it is reported and a fresh worker goes on with the next one.
pub(crate) fn run(tera: &Arc<Tera>, limits: Limits, batch: Batch) -> Results {
    let jobs = Arc::new(batch.jobs);
    let mut out = Vec::with_capacity(jobs.len());
    while out.len() < jobs.len() {
        if let Some(failure) = watch(tera, limits, &jobs, &mut out) {
            out.push(Some(Err(failure)));
        }
    }
    Results(out)
}

/// Renders `jobs` from `out.len()` on, on this thread's worker, appending the results to
/// `out`; the failure of the render the worker stopped at, when it did not finish (the worker
/// is then dropped: the next batch gets a fresh one).
fn watch(
    tera: &Arc<Tera>,
    limits: Limits,
    jobs: &Arc<Vec<(String, Context)>>,
    out: &mut Vec<Option<Result<Vec<u8>, Failure>>>,
) -> Option<Failure> {
    let done: Done = Arc::new(Mutex::new(Some(Vec::new())));
    let (finished, wait) = mpsc::channel::<()>();
    Worker::assign(Assignment {
        tera: tera.clone(),
        jobs: jobs.clone(),
        start: out.len(),
        max_bytes: limits.max_bytes,
        done: done.clone(),
        finished,
    });
    let take = || done.lock().unwrap_or_else(PoisonError::into_inner).take();
    let mut seen = 0;
    let (failure, results) = loop {
        match wait.recv_timeout(limits.max_time) {
            Ok(()) => break (None, take()),
            // The worker panicked inside the template engine.
            Err(mpsc::RecvTimeoutError::Disconnected) => break (Some(Failure::Crashed), take()),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let mut finished = done.lock().unwrap_or_else(PoisonError::into_inner);
                let n = finished.as_ref().map_or(0, Vec::len);
                // Nothing finished for a whole period: the current render took longer.
                // Tera cannot be interrupted: it is left to its thread (which ends with
                // the process, as the run now fails). Given up on under the lock the
                // worker pushes under: a render ending now is not counted as the next.
                if n == seen {
                    break (Some(Failure::TooSlow(limits.max_time)), finished.take());
                }
                seen = n;
            }
        }
    };
    if failure.is_some() {
        Worker::drop_current();
    }
    out.extend(results.unwrap_or_default().into_iter().map(Some));
    failure
}

/// A batch (from `start` on) handed to a worker: where its results go and whom to tell.
struct Assignment {
    tera: Arc<Tera>,
    jobs: Arc<Vec<(String, Context)>>,
    start: usize,
    max_bytes: usize,
    done: Done,
    finished: mpsc::Sender<()>,
}

/// A thread that renders the batches of the thread that made it, one after the other (kept
/// from one host to the next: a thread per host cost more than its renders).
struct Worker {
    assignments: mpsc::Sender<Assignment>,
}

thread_local! {
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
}

impl Worker {
    fn spawn() -> Worker {
        let (assignments, rx) = mpsc::channel::<Assignment>();
        std::thread::spawn(move || {
            let mut sizes = Sizes::new();
            // Ends when its owner drops it (the sender), or after a batch given up on.
            for a in rx {
                if !a.run(&mut sizes) {
                    return;
                }
            }
        });
        Worker { assignments }
    }

    /// Hands `a` to this thread's worker, starting one if there is none (or it is gone).
    fn assign(a: Assignment) {
        WORKER.with(|w| {
            let mut w = w.borrow_mut();
            let worker = w.get_or_insert_with(Worker::spawn);
            if let Err(mpsc::SendError(a)) = worker.assignments.send(a) {
                // Its thread panicked earlier: a fresh one.
                let fresh = w.insert(Worker::spawn());
                let _ = fresh.assignments.send(a);
            }
        });
    }

    /// Forgets this thread's worker (it is stuck in a render, or gone).
    fn drop_current() {
        WORKER.with(|w| w.borrow_mut().take());
    }
}

impl Assignment {
    /// Renders the batch, each result appended to `done`; false when the batch was given
    /// up on while a render ran (the worker is not wanted any more).
    fn run(self, sizes: &mut Sizes) -> bool {
        for (name, ctx) in &self.jobs[self.start..] {
            let result = render_one(&self.tera, name, ctx, self.max_bytes, sizes);
            match self
                .done
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_mut()
            {
                Some(results) => results.push(result),
                None => return false,
            }
        }
        let _ = self.finished.send(());
        true
    }
}

/// How long each template's last render was, by name: the next one starts with that room
/// (the same template renders about as long on every host, and growing a buffer by halves
/// cost more than the rendering of a long file).
type Sizes = HashMap<String, usize>;

fn render_one(
    tera: &Tera,
    name: &str,
    ctx: &Context,
    max: usize,
    sizes: &mut Sizes,
) -> Result<Vec<u8>, Failure> {
    let room = sizes.get(name).copied().unwrap_or_default();
    let mut out = Bounded {
        bytes: Vec::with_capacity(room.min(max)),
        max,
    };
    match tera.render_to(name, ctx, &mut out) {
        Ok(()) => {
            match sizes.get_mut(name) {
                Some(size) => *size = out.bytes.len(),
                None => {
                    sizes.insert(name.to_string(), out.bytes.len());
                }
            }
            Ok(out.bytes)
        }
        Err(_) if out.bytes.len() >= out.max => Err(Failure::TooBig(out.max)),
        Err(e) => Err(Failure::Tera(e)),
    }
}

/// A writer that refuses to grow past `max` bytes.
struct Bounded {
    bytes: Vec<u8>,
    max: usize,
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.max {
            self.bytes.resize(self.max, 0);
            return Err(std::io::Error::other("output limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Why a bounded render gave no output.
#[derive(Debug)]
pub(crate) enum Failure {
    Tera(tera::Error),
    TooBig(usize),
    TooSlow(Duration),
    Crashed,
}

impl Failure {
    /// The failure as an error about `what` on `host`: a Tera error at its template position
    /// (or `tera_at`), the others at `at`.
    pub(crate) fn diagnostic(
        self,
        site: &Site,
        what: &str,
        host: &str,
        tera_at: Option<SourceLocation>,
        at: SourceLocation,
    ) -> Box<Diagnostic> {
        Box::new(match self {
            Failure::Tera(e) => tera_diagnostic(site, &e, tera_at),
            Failure::TooBig(max) => Diagnostic::error(format!(
                "{what} on host `{host}` renders more than {} MiB",
                max >> 20
            ))
            .at(at)
            .hint("a loop that never stops growing the output? files infra manages are config, not data"),
            Failure::TooSlow(t) => Diagnostic::error(format!(
                "{what} on host `{host}` took over {t:?} to render"
            ))
            .at(at)
            .hint("look for nested loops over large ranges"),
            Failure::Crashed => Diagnostic::error(format!(
                "{what} on host `{host}` made the template engine fail (a bug in it)"
            ))
            .at(at)
            .hint("simplify the template around its last change, and report the bug"),
        })
    }
}
