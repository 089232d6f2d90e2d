//! An emulated systemd service manager for one `Type=notify` service, as the tests need it: a
//! real `NOTIFY_SOCKET`, the service's stderr collected, the watchdog enforced the way systemd
//! does (SIGABRT once no `WATCHDOG=1` came for `WATCHDOG_USEC`).

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct ServiceManager {
    socket: UnixDatagram,
    path: PathBuf,
}

/// One run of the service.
pub struct Service {
    pub child: Child,
    log: Arc<Mutex<String>>,
}

impl Service {
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl ServiceManager {
    pub fn new(dir: &Path) -> Self {
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        Self { socket, path }
    }

    /// Start `veil ARGS` with the notify socket, `WATCHDOG_USEC` when given, extra environment,
    /// and no core dumps (the watchdog's SIGABRT would write one).
    pub fn start(&self, args: &[&str], watchdog: Option<Duration>, env: &[(&str, &str)]) -> Service {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("ulimit -c 0; exec \"$0\" \"$@\"").arg(env!("CARGO_BIN_EXE_veil")).args(args);
        cmd.env("NOTIFY_SOCKET", &self.path).env_remove("WATCHDOG_USEC").env_remove("WATCHDOG_PID");
        if let Some(w) = watchdog {
            cmd.env("WATCHDOG_USEC", w.as_micros().to_string());
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                l.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Service { child, log }
    }

    /// The next notification, or `None` after `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<String> {
        self.socket.set_read_timeout(Some(timeout.max(Duration::from_millis(1)))).unwrap();
        let mut buf = vec![0u8; 4096];
        let n = self.socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Wait up to `timeout` for a notification starting with `prefix`; returns it.
    pub fn expect(&self, service: &Service, prefix: &str, timeout: Duration) -> String {
        let t = Instant::now();
        while let Some(left) = timeout.checked_sub(t.elapsed()) {
            match self.recv(left) {
                Some(m) if m.starts_with(prefix) => return m,
                _ => {}
            }
        }
        panic!("no {prefix:?} within {timeout:?}; the service said:\n{}", service.log());
    }

    /// Act as systemd's watchdog: read notifications until `WATCHDOG=1` stops coming for
    /// `period`, then send SIGABRT. Returns the pings seen and the notifications in between.
    pub fn watch_until_starved(&self, service: &Service, period: Duration, give_up: Duration) -> (usize, Vec<String>) {
        let started = Instant::now();
        let mut last_ping = Instant::now();
        let (mut pings, mut said) = (0, Vec::new());
        loop {
            assert!(started.elapsed() < give_up, "the watchdog was fed for {give_up:?}; the service said:\n{}", service.log());
            let left = period.saturating_sub(last_ping.elapsed());
            match self.recv(left) {
                Some(m) if m == "WATCHDOG=1" => {
                    pings += 1;
                    last_ping = Instant::now();
                }
                Some(m) => said.push(m),
                None if last_ping.elapsed() >= period => {
                    super::daemon::signal(service.child.id(), "ABRT");
                    return (pings, said);
                }
                None => {}
            }
        }
    }
}
