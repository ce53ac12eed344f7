//! One host's cassette while the host runs: its mode and plan, what was
//! recorded (read once, at start), the adapter's match index with which interactions were
//! played, and the new recording, kept in a temporary file beside the
//! cassette and renamed over it when the host shuts down.
//!
//! Every file operation goes through a `cap-std` handle on the cassette's
//! directory and names only the cassette (or its temporary file): nothing an
//! adapter passes can steer a write elsewhere.

use super::file::{self, CassetteFile, Recorded, TimedChunk};
use super::mode::RecordMode;
use super::plan::{Held, Plan};
use super::setup::Cassette;
use crate::{CallError, Error, Request, Response};
use cap_std::ambient_authority;
use cap_std::fs::{Dir, File, OpenOptions};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

pub(crate) struct CassetteStore {
    path: PathBuf,
    dir: Dir,
    name: String,
    mode: RecordMode,
    /// Why the mode is what it is, for messages (such as " (the default)").
    why: String,
    plan: Plan,
    /// The options the adapters run with, written into the header of a new recording.
    options: Value,
    /// What the cassette held at start, none if it did not exist or was blank.
    loaded: Option<CassetteFile>,
    index: Mutex<Option<Index>>,
    journal: Mutex<Journal>,
}

/// The result of claiming a recorded interaction by its match key.
pub(crate) enum Claim<'a> {
    /// The next unplayed interaction of that key.
    Found(&'a Recorded),
    /// The key was recorded this many times, and every one was played.
    UsedUp(u32),
    /// No recorded interaction has that key.
    Absent,
}

/// Interactions by match key, each with how many of them were played.
struct Index {
    queues: HashMap<String, Queue>,
}

struct Queue {
    at: Vec<usize>,
    played: usize,
}

enum Journal {
    /// Nothing recorded yet; no file exists.
    Idle,
    /// Recording into `temp`, which holds `count` new interactions.
    Open {
        temp: String,
        file: File,
        count: usize,
        /// Whether its header says the version with streams yet, and
        /// where its version digit is, to say so when one is recorded.
        streams: bool,
        version_at: u64,
    },
    /// Saved (or failed); recording is over.
    Closed(String),
}

impl CassetteStore {
    /// Resolves the cassette's record mode, opens its directory, reads the
    /// cassette if there is one and decides the plan. Fails when the mode
    /// only replays and there is nothing to replay.
    pub(crate) fn open(cassette: &Cassette) -> Result<CassetteStore, Error> {
        let path = cassette.path();
        let (mode, why) = cassette.resolve_mode()?;
        let fail = |message: String, source: Option<std::io::Error>| Error::Cassette {
            path: path.to_path_buf(),
            line: None,
            message,
            source,
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                fail("its path does not end in a file name (it must end in a file's name, such as demo.jsonl)".into(), None)
            })?
            .to_string();
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // A cassette about to be recorded may be the first in its folder.
        if mode != RecordMode::None && !parent.exists() {
            std::fs::create_dir_all(&parent).map_err(|e| {
                fail(
                    format!(
                        "its directory {} does not exist and cannot be created ({e}); create it or fix the path",
                        parent.display()
                    ),
                    Some(e),
                )
            })?;
        }
        let dir = Dir::open_ambient_dir(&parent, ambient_authority()).map_err(|e| {
            fail(
                format!(
                    "its directory {} cannot be opened ({e}); create the directory or fix the path",
                    parent.display()
                ),
                Some(e),
            )
        })?;
        let (held, loaded) = match dir.read_to_string(&name) {
            Ok(text) if file::is_blank(&text) => (Held::Blank, None),
            Ok(text) => {
                let loaded = file::parse(path, &text)?;
                (Held::Interactions(loaded.interactions.len()), Some(loaded))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Held::Missing, None),
            Err(e) => return Err(fail(format!("it cannot be read ({e})"), Some(e))),
        };
        let plan = Plan::decide(mode, held).ok_or_else(|| match held {
            Held::Blank => file::blank(path),
            _ => Error::CassetteNotFound {
                path: path.to_path_buf(),
                mode: mode.to_string(),
                why: why.clone(),
            },
        })?;
        warn_of_interrupted_recordings(&dir, &name, &parent);
        // The options given override, one by one, those it was recorded with.
        let mut options = match loaded.as_ref().map(|f| &f.options) {
            Some(Value::Object(recorded)) => recorded.clone(),
            _ => serde_json::Map::new(),
        };
        if let Some(Value::Object(given)) = cassette.given_options() {
            options.extend(given);
        }
        Ok(CassetteStore {
            path: path.to_path_buf(),
            dir,
            name,
            mode,
            why,
            plan,
            options: Value::Object(options),
            loaded,
            index: Mutex::new(None),
            journal: Mutex::new(Journal::Idle),
        })
    }

    /// The cassette's path, as the host was given it.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn mode(&self) -> RecordMode {
        self.mode
    }

    /// Why the mode is what it is, for messages (such as " (the default)").
    pub(crate) fn why(&self) -> &str {
        &self.why
    }

    pub(crate) fn plan(&self) -> Plan {
        self.plan
    }

    /// The options the recorder or replayer runs with: those recorded,
    /// overridden by those given.
    pub(crate) fn options(&self) -> &Value {
        &self.options
    }

    /// The interactions the cassette held at start, in file order.
    pub(crate) fn interactions(&self) -> &[Recorded] {
        self.loaded.as_ref().map_or(&[], |f| &f.interactions)
    }

    pub(crate) fn indexed(&self) -> bool {
        self.index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Keeps the first index that has a key for every interaction.
    pub(crate) fn set_index(&self, keys: Vec<String>) {
        let held = self.interactions().len();
        if keys.len() != held {
            tracing::warn!(
                cassette = %self.path.display(),
                "an adapter gave {} match keys for {held} interactions; ignored",
                keys.len(),
            );
            return;
        }
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if index.is_some() {
            return;
        }
        let mut queues: HashMap<String, Queue> = HashMap::new();
        for (at, key) in keys.into_iter().enumerate() {
            queues
                .entry(key)
                .or_insert(Queue {
                    at: Vec::new(),
                    played: 0,
                })
                .at
                .push(at);
        }
        *index = Some(Index { queues });
    }

    pub(crate) fn claim(&self, key: &str, repeat: bool) -> Claim<'_> {
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let Some(queue) = index.as_mut().and_then(|i| i.queues.get_mut(key)) else {
            return Claim::Absent;
        };
        let at = if queue.played < queue.at.len() {
            queue.played += 1;
            queue.at[queue.played - 1]
        } else if repeat {
            *queue
                .at
                .last()
                .expect("a queue has at least one interaction")
        } else {
            return Claim::UsedUp(u32::try_from(queue.at.len()).unwrap_or(u32::MAX));
        };
        Claim::Found(&self.interactions()[at])
    }

    /// Adds one interaction to the recording, with its chunks when it was
    /// streamed.
    pub(crate) fn append(
        &self,
        request: &Request,
        outcome: &Result<Response, CallError>,
        elapsed: Option<Duration>,
        chunks: Option<&[TimedChunk]>,
    ) -> Result<(), String> {
        let line = file::interaction_line(request, outcome, elapsed, chunks);
        let cannot = |e: std::io::Error| {
            format!(
                "cannot write the recording of {} ({e})",
                self.path.display()
            )
        };
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        if let Journal::Idle = *journal {
            *journal = self.start_journal()?;
        }
        match &mut *journal {
            Journal::Open {
                file,
                count,
                streams,
                version_at,
                ..
            } => {
                if chunks.is_some() && !*streams {
                    // The header is written; its one-digit version changes in place.
                    use std::io::{Seek, SeekFrom};
                    file.seek(SeekFrom::Start(*version_at))
                        .and_then(|_| write!(file, "{}", file::VERSION_WITH_STREAMS))
                        .and_then(|()| file.seek(SeekFrom::End(0)).map(drop))
                        .map_err(cannot)?;
                    *streams = true;
                }
                file.write_all(line.as_bytes()).map_err(cannot)?;
                *count += 1;
                Ok(())
            }
            Journal::Closed(why) => Err(format!(
                "cassette {} is no longer recording: {why}",
                self.path.display()
            )),
            Journal::Idle => unreachable!("the journal was just started"),
        }
    }

    /// Creates the temporary file and writes the header, plus the recorded
    /// interactions when new ones are added to them.
    fn start_journal(&self) -> Result<Journal, String> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        let (temp, mut file) = (0..100u32)
            .find_map(|attempt| {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0);
                let temp = format!(
                    ".{}.{}-{nanos}-{attempt}.recording",
                    self.name,
                    std::process::id()
                );
                match self.dir.open_with(&temp, &options) {
                    Ok(file) => Some(Ok((temp, file))),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                    Err(e) => Some(Err(e)),
                }
            })
            .unwrap_or_else(|| Err(std::io::Error::other("no free temporary file name")))
            .map_err(|e| {
                format!(
                    "cannot create a temporary file beside {} to record into ({e})",
                    self.path.display()
                )
            })?;
        // What is kept of the file keeps its version; a new recording
        // starts at the version without streams.
        let kept = self
            .loaded
            .as_ref()
            .filter(|_| self.plan == Plan::RecordMissing);
        let version = kept.map_or(file::VERSION_WITHOUT_STREAMS, |f| f.version);
        let mut head = file::header_line(&self.options, version);
        let version_at = file::version_digit_at(&head) as u64;
        for line in kept.iter().flat_map(|f| &f.lines) {
            head.push_str(line);
            head.push('\n');
        }
        file.write_all(head.as_bytes())
            .map_err(|e| format!("cannot write beside {} ({e})", self.path.display()))?;
        Ok(Journal::Open {
            temp,
            file,
            count: 0,
            streams: version >= file::VERSION_WITH_STREAMS,
            version_at,
        })
    }

    /// Saves the recording, if anything was recorded: the temporary file is
    /// synced and renamed over the cassette. Later calls do nothing.
    pub(crate) fn finish(&self) -> Result<usize, Error> {
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        let state = std::mem::replace(
            &mut *journal,
            Journal::Closed("the host shut down and saved it".into()),
        );
        let Journal::Open {
            temp, file, count, ..
        } = state
        else {
            return Ok(0);
        };
        let saved = file
            .sync_all()
            .and_then(|()| self.dir.rename(&temp, &self.dir, &self.name))
            .and_then(|()| sync_dir(&self.dir));
        if let Err(e) = saved {
            let _ = self.dir.remove_file(&temp);
            return Err(Error::Cassette {
                path: self.path.clone(),
                line: None,
                message: format!(
                    "it cannot be saved ({e}); the {count} interactions recorded are lost and the cassette is as it was"
                ),
                source: Some(e),
            });
        }
        tracing::info!(cassette = %self.path.display(), mode = %self.mode, recorded = count, "cassette saved");
        Ok(count)
    }
}

impl Drop for CassetteStore {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            tracing::error!("{e}");
        }
    }
}

/// Makes a rename in `dir` durable. (`dir` itself may be an `O_PATH`
/// handle, which cannot be synced: the directory is opened for reading.)
fn sync_dir(dir: &Dir) -> std::io::Result<()> {
    dir.open(".")?.sync_all()
}

/// Says so when an earlier recording of this cassette was interrupted (its
/// temporary file is still there, with what it had recorded).
fn warn_of_interrupted_recordings(dir: &Dir, name: &str, parent: &Path) {
    let Ok(entries) = dir.entries() else { return };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if file_name.starts_with(&prefix) && file_name.ends_with(".recording") {
            tracing::warn!(
                "an interrupted recording of {name} is left at {}: it holds what was recorded before the interruption. Rename it over the cassette to keep it, or delete it",
                parent.join(&*file_name).display()
            );
        }
    }
}
