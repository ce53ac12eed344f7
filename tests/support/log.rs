//! One test's own log: the text of every `tracing` event logged on the
//! threads of a tokio runtime made for that test. The subscriber is each
//! thread's default, set only on that runtime's threads (and on the test's
//! own while it blocks on them), so hosts of other tests, which run on
//! other threads, never write into it, and nothing global is set.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tracing::dispatcher::{self, DefaultGuard, Dispatch};

thread_local! {
    /// The log this thread writes to, for as long as the thread lives.
    static LOGGING: RefCell<Option<DefaultGuard>> = const { RefCell::new(None) };
}

/// The text logged so far, one event per line, as `tracing_subscriber::fmt`
/// prints it without colours (`INFO target: message field=value …`).
#[derive(Clone)]
pub struct Log {
    text: Arc<Mutex<String>>,
    /// Bumped at each event, so a waiter wakes when there is more to read.
    written: watch::Sender<u64>,
}

impl Default for Log {
    fn default() -> Log {
        Log {
            text: Arc::default(),
            written: watch::channel(0).0,
        }
    }
}

impl Log {
    /// Runs `test` on a new multi-thread runtime (of `threads` workers)
    /// whose threads all log here at level INFO and above.
    pub fn run<F: std::future::Future>(&self, threads: usize, test: F) -> F::Output {
        let dispatch = self.dispatch();
        let on_start = dispatch.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .on_thread_start(move || {
                let guard = dispatcher::set_default(&on_start);
                LOGGING.with(|logging| *logging.borrow_mut() = Some(guard));
            })
            .on_thread_stop(|| LOGGING.with(|logging| drop(logging.borrow_mut().take())))
            .build()
            .expect("a tokio runtime starts");
        let _here = dispatcher::set_default(&dispatch);
        runtime.block_on(test)
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Waits (up to 30 s) until the log's text satisfies `ok`, checked at
    /// every event; the text it last saw in the panic message if it never does.
    pub async fn until(&self, ok: impl Fn(&str) -> bool) -> String {
        let mut written = self.written.subscribe();
        let waited = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            loop {
                let text = self.text();
                if ok(&text) {
                    return text;
                }
                let _ = written.changed().await;
            }
        })
        .await;
        waited.unwrap_or_else(|_| panic!("the log never showed it in 30 s:\n{}", self.text()))
    }

    fn dispatch(&self) -> Dispatch {
        let log = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Writer(log.clone()))
            .finish();
        Dispatch::new(subscriber)
    }
}

/// Appends what the subscriber writes (one event per write) to the log.
struct Writer(Log);

impl std::io::Write for Writer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .text
            .lock()
            .unwrap()
            .push_str(&String::from_utf8_lossy(bytes));
        self.0.written.send_modify(|n| *n += 1);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
