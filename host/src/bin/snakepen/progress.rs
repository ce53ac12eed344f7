//! Showing the workers come up, on stderr when it is a terminal.

use crate::Failure;
use indicatif::{ProgressBar, ProgressStyle};
use snakepen::Pool;

/// Waits for every worker's handshake, with a bar of how many are ready.
pub(crate) async fn wait_ready(pool: &Pool) -> Result<(), Failure> {
    let bar = ProgressBar::new(pool.status().size as u64).with_style(
        ProgressStyle::with_template("{spinner} workers ready {pos}/{len} {msg} [{elapsed}]")
            .expect("the template is valid"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    let result = pool
        .wait_ready(|status| {
            bar.set_position((status.idle + status.busy) as u64);
            bar.set_message(if status.starting > 0 {
                format!("({} starting)", status.starting)
            } else {
                String::new()
            });
        })
        .await;
    bar.finish_and_clear();
    result.map_err(Failure::from)
}
