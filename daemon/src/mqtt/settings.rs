//! The `[mqtt]` section turned into connection options: broker address, TLS (CA, client
//! certificate), credentials, keep-alive and the Last Will, checked before the daemon starts.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::topics::Topics;
use crate::config::MqttConfig;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl Broker {
    pub fn url(&self) -> String {
        format!("{}://{}:{}", if self.tls { "mqtts" } else { "mqtt" }, self.host, self.port)
    }
}

/// Parse `mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]`.
pub fn parse_url(url: &str) -> anyhow::Result<Broker> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        anyhow::bail!("mqtt.url {url:?}: must start with mqtt:// or mqtts://");
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        anyhow::bail!("mqtt.url {url:?}: expected mqtt://HOST:PORT (credentials go in mqtt.username/password)");
    }
    let default_port = if tls { 8883 } else { 1883 };
    let (host, port) = match rest.rsplit_once(':') {
        // An IPv6 literal: [::1]:1883
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
            let port = p.parse::<u16>().map_err(|_| anyhow::anyhow!("mqtt.url {url:?}: bad port {p:?}"))?;
            (h.trim_start_matches('[').trim_end_matches(']').to_string(), port)
        }
        _ => (rest.trim_start_matches('[').trim_end_matches(']').to_string(), default_port),
    };
    if host.is_empty() || port == 0 {
        anyhow::bail!("mqtt.url {url:?}: no host or port");
    }
    Ok(Broker { host, port, tls })
}

/// The device id: configured, else the host name; only characters safe in a topic level.
pub fn device_id(config: &MqttConfig) -> String {
    let raw = config.device_id.clone().unwrap_or_else(|| sysinfo::System::host_name().unwrap_or_else(|_| "veil".into()));
    let id: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if id.is_empty() {
        "veil".into()
    } else {
        id
    }
}

/// Check the section; the error names the key.
pub fn validate(m: &MqttConfig) -> anyhow::Result<()> {
    let broker = parse_url(&m.url)?;
    if let Some(id) = &m.device_id {
        if id.is_empty() || id.chars().any(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')) {
            anyhow::bail!("mqtt.device_id {id:?}: use letters, digits, '-' and '_' only");
        }
    }
    if let Some(p) = &m.topic_prefix {
        if p.is_empty() || p.contains(['#', '+']) || p.starts_with('/') || p.ends_with('/') {
            anyhow::bail!("mqtt.topic_prefix {p:?}: no wildcards (#, +) and no leading or trailing '/'");
        }
    }
    if m.password.is_some() && m.password_file.is_some() {
        anyhow::bail!("mqtt.password and mqtt.password_file: set one, not both");
    }
    if (m.password.is_some() || m.password_file.is_some()) && m.username.is_none() {
        anyhow::bail!("mqtt.password needs mqtt.username");
    }
    if m.client_cert.is_some() != m.client_key.is_some() {
        anyhow::bail!("mqtt.client_cert and mqtt.client_key go together: set both or neither");
    }
    if !broker.tls && (m.ca_file.is_some() || m.client_cert.is_some()) {
        anyhow::bail!("mqtt.ca_file and mqtt.client_cert need an mqtts:// url");
    }
    if !(5..=3600).contains(&m.keep_alive_s) {
        anyhow::bail!("mqtt.keep_alive_s must be within 5..3600");
    }
    if !(0.5..=86_400.0).contains(&m.telemetry_interval_s) {
        anyhow::bail!("mqtt.telemetry_interval_s must be within 0.5..86400");
    }
    if !["window", "frame", "off"].contains(&m.detections.as_str()) {
        anyhow::bail!("mqtt.detections {:?}: window, frame or off", m.detections);
    }
    if !(0.1..=3600.0).contains(&m.detections_window_s) {
        anyhow::bail!("mqtt.detections_window_s must be within 0.1..3600");
    }
    if m.max_queued_events == 0 || m.max_queued_events > 10_000_000 {
        anyhow::bail!("mqtt.max_queued_events must be within 1..10000000");
    }
    if !(0.01..=3600.0).contains(&m.reconnect_min_s) || !(m.reconnect_min_s..=86_400.0).contains(&m.reconnect_max_s) {
        anyhow::bail!("mqtt.reconnect_min_s within 0.01..3600 and mqtt.reconnect_max_s at least reconnect_min_s");
    }
    if m.discovery_prefix.is_empty() || m.discovery_prefix.contains(['#', '+']) {
        anyhow::bail!("mqtt.discovery_prefix must be a topic without wildcards");
    }
    Ok(())
}

/// Everything the session needs to (re)connect, read once at start.
#[derive(Clone)]
pub struct Connection {
    pub broker: Broker,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    pub keep_alive: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

impl Connection {
    /// Read the password file and certificates now, so a bad path fails the start.
    pub fn from_config(m: &MqttConfig, device_id: &str) -> anyhow::Result<Self> {
        let broker = parse_url(&m.url)?;
        let password = match (&m.password, &m.password_file) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("mqtt.password_file {}: {e}", path.display()))?
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            ),
            _ => None,
        };
        let tls = if broker.tls { Some(Arc::new(tls_config(m)?)) } else { None };
        Ok(Self {
            broker,
            client_id: format!("veil-{device_id}"),
            username: m.username.clone(),
            password,
            tls,
            keep_alive: Duration::from_secs(m.keep_alive_s),
            reconnect_min: Duration::from_secs_f64(m.reconnect_min_s),
            reconnect_max: Duration::from_secs_f64(m.reconnect_max_s),
        })
    }

    /// Options for one connection attempt; the Last Will marks the device offline.
    pub fn options(&self, topics: &Topics) -> MqttOptions {
        let mut o = MqttOptions::new(&self.client_id, &self.broker.host, self.broker.port);
        o.set_keep_alive(self.keep_alive);
        o.set_clean_session(true);
        o.set_max_packet_size(4 << 20, 16 << 20);
        o.set_last_will(LastWill::new(topics.status(), "offline", QoS::AtLeastOnce, true));
        if let Some(user) = &self.username {
            o.set_credentials(user, self.password.clone().unwrap_or_default());
        }
        if let Some(tls) = &self.tls {
            o.set_transport(Transport::Tls(TlsConfiguration::Rustls(tls.clone())));
        }
        o
    }
}

fn tls_config(m: &MqttConfig) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match &m.ca_file {
        Some(path) => {
            for cert in read_certs(path, "mqtt.ca_file")? {
                roots.add(cert).map_err(|e| anyhow::anyhow!("mqtt.ca_file {}: {e}", path.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    Ok(match (&m.client_cert, &m.client_key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "mqtt.client_cert")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| anyhow::anyhow!("mqtt.client_key {}: {e}", key.display()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| anyhow::anyhow!("mqtt.client_cert: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    })
}

fn read_certs(path: &Path, key: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow::anyhow!("{key} {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{key} {}: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{key} {}: no PEM certificate in it", path.display());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_default_ports_and_bad_ones_are_refused() {
        let b = parse_url("mqtt://broker.local").unwrap();
        assert_eq!((b.host.as_str(), b.port, b.tls), ("broker.local", 1883, false));
        let b = parse_url("mqtts://10.0.0.5:8884/").unwrap();
        assert_eq!((b.host.as_str(), b.port, b.tls), ("10.0.0.5", 8884, true));
        let b = parse_url("mqtt://[::1]:1884").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("::1", 1884));
        for bad in ["http://x:1883", "mqtt://", "mqtt://user:pw@host:1883", "mqtt://h:99999", "mqtt://h/topic"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_section_is_checked_key_by_key() {
        let ok = MqttConfig::default();
        validate(&ok).unwrap();
        let cases: Vec<(MqttConfig, &str)> = vec![
            (MqttConfig { device_id: Some("rig 7".into()), ..ok.clone() }, "mqtt.device_id"),
            (MqttConfig { topic_prefix: Some("veil/#".into()), ..ok.clone() }, "mqtt.topic_prefix"),
            (MqttConfig { password: Some("x".into()), ..ok.clone() }, "mqtt.username"),
            (MqttConfig { ca_file: Some("/ca.pem".into()), ..ok.clone() }, "mqtts://"),
            (MqttConfig { detections: "always".into(), ..ok.clone() }, "mqtt.detections"),
            (MqttConfig { telemetry_interval_s: 0.0, ..ok.clone() }, "mqtt.telemetry_interval_s"),
        ];
        for (bad, key) in cases {
            let err = validate(&bad).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn device_ids_are_made_safe_for_topics() {
        let m = MqttConfig { device_id: None, ..Default::default() };
        assert!(device_id(&m).chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
