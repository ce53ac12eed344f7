//! A pool process's stdout and stderr: drained into the host's log line by
//! line, and the last lines of stderr kept for crash reports. Every buffer
//! here is bounded, whatever the process writes: a line is cut into pieces
//! of at most [`LINE_BYTES`] (logged with `continued` on the pieces after
//! the first), `\r` ends a line as `\n` does (a progress bar is many short
//! lines, not one long one), and the [`Tail`] holds at most [`TAIL_LINES`]
//! lines and [`TAIL_BYTES`] bytes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncReadExt;

/// The longest piece of a line logged (or kept) as one.
pub(crate) const LINE_BYTES: usize = 8 << 10;
/// Lines of stderr kept for crash reports.
pub(crate) const TAIL_LINES: usize = 20;
/// Bytes of stderr kept for crash reports, separators included.
pub(crate) const TAIL_BYTES: usize = 8 << 10;
/// How much is read from a pipe at once.
const READ_BYTES: usize = 64 << 10;

/// The last lines of a process's stderr, bounded by lines and bytes.
#[derive(Default)]
pub(crate) struct Tail {
    lines: VecDeque<String>,
    /// The bytes of `lines` joined by newlines.
    bytes: usize,
}

impl Tail {
    /// Keeps `line` (cut to [`TAIL_BYTES`]), forgetting the oldest lines
    /// beyond either bound.
    pub(crate) fn push(&mut self, line: &str) {
        let mut end = line.len().min(TAIL_BYTES);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        let line = &line[..end];
        self.bytes += line.len() + usize::from(!self.lines.is_empty());
        self.lines.push_back(line.to_string());
        while self.lines.len() > TAIL_LINES || self.bytes > TAIL_BYTES {
            let Some(oldest) = self.lines.pop_front() else {
                break;
            };
            self.bytes -= oldest.len() + usize::from(!self.lines.is_empty());
        }
    }

    /// The kept lines, joined by newlines.
    pub(crate) fn text(&self) -> String {
        Vec::from_iter(self.lines.iter().map(String::as_str)).join("\n")
    }
}

/// Forwards a process's stdout and stderr to the log (keeping stderr's last
/// lines in `tail`); the handle ends when stderr is drained.
pub(crate) fn forward(
    stdout: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    stderr: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    worker: u64,
    pid: u32,
    tail: Option<Arc<Mutex<Tail>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(forward_lines(stdout, worker, pid, "stdout", None));
    tokio::spawn(forward_lines(stderr, worker, pid, "stderr", tail))
}

/// Sends each line of a process's stdout or stderr to the log, keeping the
/// last lines of stderr for crash reports.
async fn forward_lines(
    mut stream: impl tokio::io::AsyncRead + Unpin,
    worker: u64,
    pid: u32,
    name: &'static str,
    tail: Option<Arc<Mutex<Tail>>>,
) {
    let emit = |piece: &[u8], continued: bool| {
        // Decoded lossily: output that is not UTF-8 must still be drained,
        // or the process would block on a full pipe.
        let line = String::from_utf8_lossy(piece);
        tracing::info!(target: "snakepen::worker", worker, pid, stream = name, continued, "{line}");
        if let Some(tail) = &tail {
            tail.lock().unwrap_or_else(|p| p.into_inner()).push(&line);
        }
    };
    let mut lines = Lines::default();
    let mut chunk = vec![0u8; READ_BYTES];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => lines.feed(&chunk[..n], &emit),
            Err(e) => {
                tracing::warn!(target: "snakepen::worker", worker, pid, stream = name, error = %e, "cannot read the process's output");
                break;
            }
        }
    }
    lines.finish(&emit);
}

/// Cuts a byte stream into lines of at most [`LINE_BYTES`].
#[derive(Default)]
struct Lines {
    line: Vec<u8>,
    /// The line being read continues a piece already emitted.
    continued: bool,
    /// The last byte seen was `\r` (so a `\n` right after it ends nothing).
    after_cr: bool,
}

impl Lines {
    fn feed(&mut self, mut bytes: &[u8], emit: &impl Fn(&[u8], bool)) {
        while !bytes.is_empty() {
            let room = LINE_BYTES - self.line.len();
            let end = bytes
                .iter()
                .take(room)
                .position(|&b| b == b'\n' || b == b'\r');
            match end {
                Some(i) => {
                    let (ending, cr) = (i + 1, bytes[i] == b'\r');
                    self.line.extend_from_slice(&bytes[..i]);
                    // Nothing to emit when the line's last piece was just
                    // emitted, for an empty line ended by `\r` (a progress
                    // bar's redraw), or for `\n` after `\r` (one line end).
                    let nothing = self.line.is_empty() && (self.continued || cr || self.after_cr);
                    if !nothing {
                        emit(&self.line, self.continued);
                    }
                    self.line.clear();
                    self.continued = false;
                    self.after_cr = cr;
                    bytes = &bytes[ending..];
                }
                None => {
                    let taken = bytes.len().min(room);
                    self.line.extend_from_slice(&bytes[..taken]);
                    self.after_cr = false;
                    bytes = &bytes[taken..];
                    if self.line.len() == LINE_BYTES {
                        emit(&self.line, self.continued);
                        self.line.clear();
                        self.continued = true;
                    }
                }
            }
        }
    }

    /// Emits what is left once the stream has ended.
    fn finish(self, emit: &impl Fn(&[u8], bool)) {
        if !self.line.is_empty() {
            emit(&self.line, self.continued);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn cut(input: &[&[u8]]) -> Vec<(String, bool)> {
        let out = RefCell::new(Vec::new());
        let emit = |piece: &[u8], continued: bool| {
            out.borrow_mut()
                .push((String::from_utf8_lossy(piece).into_owned(), continued))
        };
        let mut lines = Lines::default();
        for bytes in input {
            lines.feed(bytes, &emit);
        }
        lines.finish(&emit);
        out.into_inner()
    }

    #[test]
    fn newlines_carriage_returns_and_both_end_lines() {
        let got = cut(&[b"one\ntwo\r\nthr", b"ee\r\r 10%\r 20%\rlast"]);
        let lines: Vec<_> = got.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(lines, ["one", "two", "three", " 10%", " 20%", "last"]);
        assert!(got.iter().all(|(_, continued)| !continued));
    }

    #[test]
    fn a_long_line_is_cut_into_marked_pieces() {
        let long = vec![b'x'; 2 * LINE_BYTES + 5];
        let got = cut(&[&long, b"\nnext\n"]);
        let shape: Vec<_> = got.iter().map(|(l, c)| (l.len(), *c)).collect();
        assert_eq!(
            shape,
            [
                (LINE_BYTES, false),
                (LINE_BYTES, true),
                (5, true),
                (4, false)
            ]
        );
    }

    #[test]
    fn a_line_of_whole_pieces_ends_with_its_last_piece() {
        let long = vec![b'x'; 2 * LINE_BYTES];
        let got = cut(&[&long, b"\n\nnext"]);
        let shape: Vec<_> = got.iter().map(|(l, c)| (l.len(), *c)).collect();
        assert_eq!(
            shape,
            [
                (LINE_BYTES, false),
                (LINE_BYTES, true),
                (0, false),
                (4, false)
            ]
        );
    }

    #[test]
    fn the_tail_keeps_the_last_lines_within_its_bounds() {
        let mut tail = Tail::default();
        for n in 0..100 {
            tail.push(&format!("line {n}"));
        }
        assert_eq!(tail.text().lines().count(), TAIL_LINES);
        assert!(tail.text().ends_with("line 99"));
        for _ in 0..3 {
            tail.push(&"e".repeat(3 * TAIL_BYTES));
        }
        assert_eq!(tail.text().len(), TAIL_BYTES);
        tail.push("after");
        assert_eq!(
            tail.text(),
            "after",
            "a line that does not fit pushes out the older ones"
        );
    }
}
