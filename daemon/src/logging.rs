//! Where log events go: straight into the systemd journal (native protocol, so every event keeps
//! its fields: PRIORITY, CODE_FILE, TARGET, frame ids, causes) when systemd connected stderr to
//! the journal, else as plain lines on stderr. `VEIL_LOG` filters (default `warn`).

use std::os::unix::fs::MetadataExt;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Install the process-wide subscriber once, at start.
pub fn init() {
    let filter = || EnvFilter::try_from_env("VEIL_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    if stderr_is_journal(std::env::var("JOURNAL_STREAM").ok().as_deref()) {
        match tracing_journald::layer() {
            Ok(journal) => {
                tracing_subscriber::registry()
                    .with(filter())
                    .with(journal.with_syslog_identifier("veil".into()).with_field_prefix(None))
                    .init();
                return;
            }
            Err(e) => eprintln!("veil: stderr goes to the journal but its socket is not reachable ({e}); logging to stderr"),
        }
    }
    tracing_subscriber::fmt().with_env_filter(filter()).with_writer(std::io::stderr).init();
}

/// systemd sets `JOURNAL_STREAM=DEVICE:INODE` of the stream it connected stdout/stderr to; when
/// that is still our stderr (not redirected since), the journal takes our events natively.
fn stderr_is_journal(journal_stream: Option<&str>) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(|v| v.split_once(':')) else { return false };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else { return false };
    let Ok(fd) = std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned() else { return false };
    std::fs::File::from(fd).metadata().is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_is_used_only_when_journal_stream_names_our_stderr() {
        let fd = std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned().unwrap();
        let m = std::fs::File::from(fd).metadata().unwrap();
        assert!(stderr_is_journal(Some(&format!("{}:{}", m.dev(), m.ino()))));
        assert!(!stderr_is_journal(Some(&format!("{}:{}", m.dev(), m.ino() + 1))), "stderr redirected since");
        assert!(!stderr_is_journal(Some("garbage")));
        assert!(!stderr_is_journal(None));
    }
}
