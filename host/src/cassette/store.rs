//! One host's cassette while the host runs: what was recorded (read once,
//! at start), the adapter's match index with which interactions were
//! played, and the new recording, kept in a temporary file beside the
//! cassette and renamed over it when the host shuts down.
//!
//! Every file operation goes through a `cap-std` handle on the cassette's
//! directory and names only the cassette (or its temporary file): nothing an
//! adapter passes can steer a write elsewhere.

use super::RecordMode;
use super::file::{self, CassetteFile};
use crate::bindings::wit;
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
    /// The options written into the header of a new recording.
    options: Value,
    /// What the cassette held at start, none if it did not exist.
    loaded: Option<CassetteFile>,
    /// The same interactions, as the contract hands them to adapters.
    interactions: Vec<wit::Interaction>,
    index: Mutex<Option<Index>>,
    journal: Mutex<Journal>,
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
    },
    /// Saved (or failed); recording is over.
    Closed(String),
}

impl CassetteStore {
    /// Opens the cassette's directory and reads the cassette if it exists.
    pub(crate) fn open(path: &Path, mode: RecordMode) -> Result<CassetteStore, Error> {
        let fail = |message: String| Error::Cassette {
            path: path.to_path_buf(),
            line: None,
            message,
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                fail("its path does not end in a file name (it must end in a file's name, such as demo.jsonl)".into())
            })?
            .to_string();
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // A cassette about to be recorded may be the first in its folder.
        if mode != RecordMode::None && !parent.exists() {
            std::fs::create_dir_all(&parent).map_err(|e| {
                fail(format!(
                    "its directory {} does not exist and cannot be created ({e}); create it or fix the path",
                    parent.display()
                ))
            })?;
        }
        let dir = Dir::open_ambient_dir(&parent, ambient_authority()).map_err(|e| {
            fail(format!(
                "its directory {} cannot be opened ({e}); create the directory or fix the path",
                parent.display()
            ))
        })?;
        let loaded = match dir.read_to_string(&name) {
            Ok(text) => Some(file::parse(path, &text)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(fail(format!("it cannot be read ({e})"))),
        };
        warn_of_interrupted_recordings(&dir, &name, &parent);
        let interactions = loaded
            .iter()
            .flat_map(|f| &f.interactions)
            .map(|r| wit::Interaction {
                request: wit::Request::from(&r.request),
                outcome: r.outcome.clone().map(Into::into).map_err(Into::into),
            })
            .collect();
        Ok(CassetteStore {
            path: path.to_path_buf(),
            dir,
            name,
            mode,
            options: Value::Object(Default::default()),
            loaded,
            interactions,
            index: Mutex::new(None),
            journal: Mutex::new(Journal::Idle),
        })
    }

    pub(crate) fn exists(&self) -> bool {
        self.loaded.is_some()
    }

    /// The options the cassette was recorded with, if it exists.
    pub(crate) fn recorded_options(&self) -> Option<Value> {
        self.loaded.as_ref().map(|f| f.options.clone())
    }

    pub(crate) fn set_options(&mut self, options: Value) {
        self.options = options;
    }

    pub(crate) fn mode(&self) -> RecordMode {
        self.mode
    }

    pub(crate) fn info(&self) -> wit_cassette::CassetteInfo {
        wit_cassette::CassetteInfo {
            path: self.path.display().to_string(),
            mode: self.mode.as_str().to_string(),
            interactions: u32::try_from(self.interactions.len()).unwrap_or(u32::MAX),
        }
    }

    pub(crate) fn interactions(&self) -> &[wit::Interaction] {
        &self.interactions
    }

    pub(crate) fn indexed(&self) -> bool {
        self.index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Keeps the first index that has a key for every interaction.
    pub(crate) fn set_index(&self, keys: Vec<String>) {
        if keys.len() != self.interactions.len() {
            tracing::warn!(
                cassette = %self.path.display(),
                "an adapter gave {} match keys for {} interactions; ignored",
                keys.len(),
                self.interactions.len()
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

    pub(crate) fn claim(&self, key: &str, repeat: bool) -> wit_cassette::Claimed {
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let Some(queue) = index.as_mut().and_then(|i| i.queues.get_mut(key)) else {
            return wit_cassette::Claimed::Absent;
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
            return wit_cassette::Claimed::UsedUp(
                u32::try_from(queue.at.len()).unwrap_or(u32::MAX),
            );
        };
        wit_cassette::Claimed::Found(self.interactions[at].clone())
    }

    /// Adds one interaction to the recording.
    pub(crate) fn append(
        &self,
        interaction: wit::Interaction,
        elapsed: Option<Duration>,
    ) -> Result<(), String> {
        let request = Request::from(interaction.request);
        let outcome: Result<Response, CallError> =
            interaction.outcome.map(Into::into).map_err(Into::into);
        let line = file::interaction_line(&request, &outcome, elapsed);
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        if let Journal::Idle = *journal {
            *journal = self.start_journal()?;
        }
        match &mut *journal {
            Journal::Open { file, count, .. } => {
                file.write_all(line.as_bytes()).map_err(|e| {
                    format!(
                        "cannot write the recording of {} ({e})",
                        self.path.display()
                    )
                })?;
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
        let mut head = file::header_line(&self.options);
        if self.mode == RecordMode::NewEpisodes {
            for line in self.loaded.iter().flat_map(|f| &f.lines) {
                head.push_str(line);
                head.push('\n');
            }
        }
        file.write_all(head.as_bytes())
            .map_err(|e| format!("cannot write beside {} ({e})", self.path.display()))?;
        Ok(Journal::Open {
            temp,
            file,
            count: 0,
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
        let Journal::Open { temp, file, count } = state else {
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

use crate::bindings::snakepen::adapter::cassette as wit_cassette;
