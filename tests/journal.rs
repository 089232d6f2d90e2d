//! Logging to the systemd journal: when `JOURNAL_STREAM` names veil's stderr (systemd connected
//! it to the journal), events go over journald's native protocol with their fields, not as text.
//! veil runs in a private mount namespace whose `/run` holds this test's journal socket.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// One journal entry in the native protocol: `KEY=value\n`, or `KEY\n`, a little-endian u64
/// length, the value and `\n` for values holding newlines.
fn parse_entry(mut data: &[u8]) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    while !data.is_empty() {
        let line_end = data.iter().position(|&b| b == b'\n').expect("field ends with a newline");
        let line = &data[..line_end];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            fields.insert(String::from_utf8_lossy(&line[..eq]).into(), String::from_utf8_lossy(&line[eq + 1..]).into());
            data = &data[line_end + 1..];
        } else {
            let rest = &data[line_end + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            fields.insert(String::from_utf8_lossy(line).into(), String::from_utf8_lossy(&rest[8..8 + len]).into());
            assert_eq!(rest[8 + len], b'\n');
            data = &rest[9 + len..];
        }
    }
    fields
}

#[test]
fn events_reach_the_journal_with_their_fields_when_stderr_is_the_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(run.join("systemd/journal")).unwrap();
    let journal = UnixDatagram::bind(run.join("systemd/journal/socket")).unwrap();
    journal.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let frames = frames_dir(tmp.path(), &["group6.jpg"]);
    // Paced like a live camera with a 1 ms deadline: the frame is dropped (a warning with the
    // frame id and the cause), then the replay ends (an info event).
    let config = camera_config(tmp.path(), &frames, "fps = 5\ndeadline_ms = 1\nwidth = 320\nheight = 240\n");
    let stderr_path = tmp.path().join("stderr");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let meta = stderr.metadata().unwrap();
    let mut child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", "mount --bind \"$0\" /run && exec \"$@\""])
        .arg(&run)
        .arg(env!("CARGO_BIN_EXE_veil"))
        .args(["serve", "--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(["--state-dir", tmp.path().join("state").to_str().unwrap()])
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .env("VEIL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("unshare (util-linux) runs");
    let mut entries = Vec::new();
    let t = Instant::now();
    let mut buf = vec![0u8; 65536];
    while t.elapsed() < Duration::from_secs(60) {
        if let Ok(n) = journal.recv(&mut buf) {
            entries.push(parse_entry(&buf[..n]));
        }
        let done = entries.iter().any(|e| e.get("MESSAGE").is_some_and(|m| m.starts_with("source finished")));
        if done || child.try_wait().unwrap().is_some() {
            break;
        }
    }
    common::daemon::signal(child.id(), "TERM");
    let status = child.wait().unwrap();
    let text = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(status.success(), "{status:?}: {text}");
    let drop = entries
        .iter()
        .find(|e| e.get("MESSAGE").is_some_and(|m| m.starts_with("frame dropped")))
        .unwrap_or_else(|| panic!("no frame-dropped entry in {entries:#?}\nstderr: {text}"));
    assert_eq!(drop["PRIORITY"], "4", "a warning");
    assert_eq!(drop["CAUSE"], "deadline");
    assert!(drop["FRAME"].parse::<u64>().is_ok(), "{drop:?}");
    assert_eq!(drop["SYSLOG_IDENTIFIER"], "veil");
    assert_eq!(drop["TARGET"], "veil::pipeline");
    assert!(drop["CODE_FILE"].ends_with("pipeline/mod.rs") && drop["CODE_LINE"].parse::<u32>().is_ok(), "{drop:?}");
    let finished = entries.iter().find(|e| e.get("MESSAGE").is_some_and(|m| m.starts_with("source finished"))).unwrap();
    assert_eq!(finished["PRIORITY"], "5", "info is journald's notice");
    // The events went to the journal, not as text on stderr; the plain status lines still did.
    assert!(!text.contains("frame dropped"), "{text}");
    assert!(text.contains("veil: ready"), "{text}");
}
