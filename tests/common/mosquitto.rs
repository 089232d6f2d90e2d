//! A real Mosquitto broker started by a test on free loopback ports (plain, and TLS with a CA
//! made at test time), plus a recording subscriber. `make test` installs the Debian package;
//! a missing broker fails the test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Test certificates: a CA, a server certificate for `localhost` and a client certificate.
pub struct TestPki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TestPki {
    pub fn make(dir: &Path) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "veil test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf = |names: Vec<String>, purpose: ExtendedKeyUsagePurpose, cn: &str| {
            let mut p = CertificateParams::new(names).unwrap();
            p.extended_key_usages = vec![purpose];
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            let key = KeyPair::generate().unwrap();
            let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) =
            leaf(vec!["localhost".into(), "127.0.0.1".into()], ExtendedKeyUsagePurpose::ServerAuth, "localhost");
        let (client_cert, client_key) = leaf(vec![], ExtendedKeyUsagePurpose::ClientAuth, "rig-tls");
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        TestPki {
            ca: write("ca.pem", &ca.pem()),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
        }
    }
}

pub struct Mosquitto {
    child: Option<Child>,
    conf: PathBuf,
    pub port: u16,
    pub tls_port: Option<u16>,
    pub log: Arc<Mutex<String>>,
}

/// How the broker is set up.
#[derive(Default)]
pub struct BrokerSetup<'a> {
    /// (user, password) required on the plain listener.
    pub user: Option<(&'a str, &'a str)>,
    /// A TLS listener that requires a client certificate from this PKI.
    pub tls: Option<&'a TestPki>,
}

impl Mosquitto {
    pub fn start(dir: &Path, setup: BrokerSetup<'_>) -> Mosquitto {
        let port = free_port();
        let mut conf = format!(
            "per_listener_settings true\npersistence false\nuser root\nlog_dest stderr\nlog_type error\nlog_type warning\n\
             listener {port} 127.0.0.1\n"
        );
        match setup.user {
            Some((user, password)) => {
                let file = dir.join("passwords");
                let ok = Command::new("mosquitto_passwd")
                    .args(["-b", "-c", file.to_str().unwrap(), user, password])
                    .status()
                    .expect("mosquitto_passwd (Debian package mosquitto; make test installs it)");
                assert!(ok.success());
                conf += &format!("allow_anonymous false\npassword_file {}\n", file.display());
            }
            None => conf += "allow_anonymous true\n",
        }
        let mut tls_port = None;
        if let Some(pki) = setup.tls {
            let p = free_port();
            tls_port = Some(p);
            conf += &format!(
                "listener {p} 127.0.0.1\nallow_anonymous true\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
                pki.ca.display(),
                pki.server_cert.display(),
                pki.server_key.display()
            );
        }
        let conf_path = dir.join("mosquitto.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut m = Mosquitto { child: None, conf: conf_path, port, tls_port, log: Arc::default() };
        m.restart();
        m
    }

    /// Start (again) on the same ports.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut child = Command::new(mosquitto_binary())
            .args(["-c", self.conf.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mosquitto runs (Debian package mosquitto; make test installs it)");
        let stderr = child.stderr.take().unwrap();
        let log = self.log.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("mosquitto exited ({status}): {}", self.log.lock().unwrap());
            }
            assert!(t.elapsed() < Duration::from_secs(10), "mosquitto did not open port {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

fn mosquitto_binary() -> &'static str {
    if Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    }
}

/// One message a subscriber saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Seen {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or_else(|e| panic!("{} is not JSON ({e}): {}", self.topic, self.text()))
    }
}

/// A client that subscribes to `filters` (again after every reconnect) and records everything.
pub struct Subscriber {
    client: Client,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Subscriber {
    pub fn connect(port: u16, filters: &[&str], user: Option<(&str, &str)>) -> Subscriber {
        let mut opts = MqttOptions::new(format!("test-{}", free_port()), "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_max_packet_size(16 << 20, 1 << 20);
        if let Some((u, p)) = user {
            opts.set_credentials(u, p);
        }
        let (client, mut connection) = Client::new(opts, 64);
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (c, s) = (client.clone(), seen.clone());
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for f in &filters {
                            c.subscribe(f.clone(), QoS::AtLeastOnce).unwrap();
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        s.lock().unwrap().push(Seen { topic: p.topic.clone(), payload: p.payload.to_vec(), retain: p.retain })
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).expect("subscriber connected and subscribed");
        Subscriber { client, seen }
    }

    pub fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client.publish(topic, QoS::AtLeastOnce, false, payload.into()).unwrap();
    }

    pub fn all(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Wait for a message on `topic` that `accept` likes.
    pub fn wait_for(&self, topic: &str, timeout: Duration, accept: impl Fn(&Seen) -> bool) -> Seen {
        let t = Instant::now();
        loop {
            if let Some(m) = self.seen.lock().unwrap().iter().find(|m| m.topic == topic && accept(m)) {
                return m.clone();
            }
            assert!(
                t.elapsed() < timeout,
                "nothing accepted on {topic} within {timeout:?}; seen: {:?}",
                self.all().iter().map(|m| (m.topic.clone(), m.text().chars().take(120).collect::<String>())).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send a command and wait for the reply carrying `id`.
    pub fn command(&self, prefix: &str, name: &str, request: serde_json::Value) -> serde_json::Value {
        let id = request["id"].clone();
        self.publish(&format!("{prefix}/cmd/{name}"), request.to_string());
        self.wait_for(&format!("{prefix}/cmd/{name}/reply"), Duration::from_secs(60), |m| {
            serde_json::from_slice::<serde_json::Value>(&m.payload).is_ok_and(|v| v["id"] == id)
        })
        .json()
    }
}
