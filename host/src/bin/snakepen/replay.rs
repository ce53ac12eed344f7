//! `snakepen replay CASSETTE`: checks a cassette on its own. Every recorded
//! request goes through the replayer, in file order, with the options the
//! cassette was recorded with, and each answer is compared with its recording
//! (a streamed one is read as a stream, and its chunks are compared too).

use crate::Failure;
use clap::Args;
use snakepen::cassette::CassetteFile;
use snakepen::{CallError, Cassette, Host, Response, Runtime};
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct ReplayArgs {
    /// The cassette to check.
    cassette: PathBuf,

    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn replay(
    runtime: &Runtime,
    plugin_dirs: &[PathBuf],
    args: ReplayArgs,
) -> Result<(), Failure> {
    let file = CassetteFile::read(&args.cassette)?;
    let mut builder = Host::builder()
        .runtime(runtime)
        .cassette(Cassette::replay(&args.cassette));
    for dir in plugin_dirs {
        builder = builder.plugin_dir(dir);
    }
    let host = builder.build().await?;

    let mut differences = Vec::new();
    for (i, recorded) in file.interactions.iter().enumerate() {
        let request = recorded.request.clone();
        let (chunks, replayed) = match &recorded.chunks {
            None => (None, host.call(request).await),
            Some(_) => {
                let (chunks, outcome) = streamed(&host, request).await;
                (Some(chunks), outcome)
            }
        };
        let recorded_chunks = recorded
            .chunks
            .as_ref()
            .map(|chunks| chunks.iter().map(|c| c.chunk.clone()).collect::<Vec<_>>());
        if chunks != recorded_chunks {
            differences.push(serde_json::json!({
                "interaction": i + 1,
                "command": recorded.request.command,
                "session": recorded.request.session,
                "recorded": format!("{} chunks", recorded_chunks.map_or(0, |c| c.len())),
                "replayed": format!("{} chunks", chunks.map_or(0, |c| c.len())),
            }));
        } else if replayed != recorded.outcome {
            differences.push(serde_json::json!({
                "interaction": i + 1,
                "command": recorded.request.command,
                "session": recorded.request.session,
                "recorded": show(&recorded.outcome),
                "replayed": show(&replayed),
            }));
        }
    }
    let total = file.interactions.len();
    if args.json {
        let report = serde_json::json!({
            "cassette": args.cassette,
            "interactions": total,
            "identical": total - differences.len(),
            "differences": differences,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("JSON values serialize")
        );
    } else {
        for d in &differences {
            println!(
                "interaction {} ({}):\n  recorded: {}\n  replayed: {}",
                d["interaction"], d["command"], d["recorded"], d["replayed"]
            );
        }
        println!(
            "{}: {total} interactions replayed, {} identical to their recording",
            args.cassette.display(),
            total - differences.len()
        );
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(Failure::Failed(format!(
            "{} of {total} replayed answers differ from their recording: check the cassette's options (ignore, match_session) for requests that match each other's recordings",
            differences.len()
        )))
    }
}

/// A streamed call read to its end: its chunks, then its outcome.
async fn streamed(
    host: &Host,
    request: snakepen::Request,
) -> (Vec<Vec<u8>>, Result<Response, CallError>) {
    let mut stream = host.call_stream(request);
    let mut chunks = Vec::new();
    loop {
        match stream.next().await {
            Some(Ok(snakepen::StreamItem::Chunk(chunk))) => chunks.push(chunk),
            Some(Ok(snakepen::StreamItem::End(end))) => return (chunks, Ok(end)),
            Some(Err(error)) => return (chunks, Err(error)),
            None => {
                let gone = CallError::AdapterFault("the stream ended without an outcome".into());
                return (chunks, Err(gone));
            }
        }
    }
}

/// An outcome in one line.
fn show(outcome: &Result<Response, CallError>) -> String {
    let text = match outcome {
        Ok(response) => String::from_utf8_lossy(&response.payload).into_owned(),
        Err(error) => format!("{}: {}", error.kind(), error),
    };
    let text = text.replace('\n', " ");
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}
