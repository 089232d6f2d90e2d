//! Config changes made from the fleet (`config/set`): checked against the whole config, kept as an
//! overlay file in the state directory (written atomically), and layered over the config file at
//! every start, so a change survives a reboot without the daemon writing to `/etc`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::config::Config;

pub const OVERLAY_FILE: &str = "remote-config.toml";

/// Keys the running daemon applies at once (a prefix ending in `.` covers a whole section);
/// any other accepted change takes effect at the next start.
const LIVE_KEYS: &[&str] = &[
    "detector.confidence",
    "detector.nms_threshold",
    "detector.max_faces",
    "detector.scale",
    "detector.backend",
    "detector.precision",
    "redact.",
    "mqtt.telemetry_interval_s",
    "mqtt.detections",
    "mqtt.detections_window_s",
];

/// Keys that cannot be set remotely, and why.
const REFUSED: &[(&str, &str)] = &[("server.state_dir", "the overlay itself lives in the state directory")];

/// Key names whose values are never shown (`config/get`).
const SECRET_NAMES: &[&str] = &["password", "secret"];

pub fn overlay_path(state_dir: &Path) -> PathBuf {
    state_dir.join(OVERLAY_FILE)
}

/// The overlay kept in `state_dir`, if any (an empty object when there is none).
pub fn load_overlay(state_dir: &Path) -> anyhow::Result<Value> {
    let path = overlay_path(state_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let v: toml::Value = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Ok(serde_json::to_value(v)?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Object(Map::new())),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

/// `config` with `overlay` laid over it (not validated).
pub fn apply(config: &Config, overlay: &Value) -> anyhow::Result<Config> {
    let mut v = serde_json::to_value(config)?;
    merge(&mut v, overlay);
    serde_json::from_value(v).map_err(|e| anyhow::anyhow!("{e}"))
}

/// An accepted change: the new whole config and overlay, and which keys it changed.
#[derive(Debug)]
pub struct Change {
    pub config: Config,
    pub overlay: Value,
    /// Changed keys applied while running.
    pub live: Vec<String>,
    /// Changed keys that take effect at the next start.
    pub at_restart: Vec<String>,
}

/// Check `patch` (a partial config, nested like the TOML file) against `current`; the error
/// says what is wrong and names the key.
pub fn plan(current: &Config, overlay: &Value, patch: &Value) -> Result<Change, String> {
    if !patch.is_object() {
        return Err("\"config\" must be an object of sections, e.g. {\"detector\": {\"confidence\": 0.4}}".into());
    }
    let mut patched_keys = BTreeMap::new();
    flatten("", patch, &mut patched_keys);
    if patched_keys.is_empty() {
        return Err("\"config\" changes nothing".into());
    }
    for (key, value) in &patched_keys {
        if value.is_null() {
            return Err(format!("{key}: null cannot be stored; give a value"));
        }
        if let Some((_, why)) = REFUSED.iter().find(|(k, _)| key == k) {
            return Err(format!("{key} cannot be set remotely: {why}"));
        }
    }
    let mut merged = serde_json::to_value(current).map_err(|e| e.to_string())?;
    merge(&mut merged, patch);
    let config: Config = serde_json::from_value(merged).map_err(|e| format!("invalid config: {e}"))?;
    config.validate().map_err(|e| e.to_string())?;

    let (mut before, mut after) = (BTreeMap::new(), BTreeMap::new());
    flatten("", &serde_json::to_value(current).map_err(|e| e.to_string())?, &mut before);
    flatten("", &serde_json::to_value(&config).map_err(|e| e.to_string())?, &mut after);
    let changed: Vec<String> = after.iter().filter(|(k, v)| before.get(*k) != Some(v)).map(|(k, _)| k.clone()).collect();
    let (live, at_restart) = changed.into_iter().partition(|k| is_live(k));
    let mut overlay = overlay.clone();
    merge(&mut overlay, patch);
    Ok(Change { config, overlay, live, at_restart })
}

fn is_live(key: &str) -> bool {
    LIVE_KEYS.iter().any(|k| if k.ends_with('.') { key.starts_with(k) } else { key == *k })
}

/// Write the overlay atomically (temporary file, fsync, rename).
pub fn save(state_dir: &Path, overlay: &Value) -> anyhow::Result<PathBuf> {
    let path = overlay_path(state_dir);
    let text = format!(
        "# Written by veil: config changes received from the fleet, laid over the config file at start.\n{}",
        toml::to_string(overlay)?
    );
    crate::commands::write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// The config as JSON with every secret replaced.
pub fn redacted(config: &Config) -> Value {
    let mut v = serde_json::to_value(config).unwrap_or(Value::Null);
    hide_secrets(&mut v);
    v
}

fn hide_secrets(v: &mut Value) {
    if let Value::Object(map) = v {
        for (k, child) in map.iter_mut() {
            if SECRET_NAMES.contains(&k.as_str()) && !child.is_null() {
                *child = Value::String("<hidden>".into());
            } else {
                hide_secrets(child);
            }
        }
    }
}

/// Lay `patch` over `base`: objects merge key by key, anything else replaces.
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// Dotted keys of every leaf (arrays count as leaves).
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(map) if !map.is_empty() || prefix.is_empty() => {
            for (k, child) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, child, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_change_is_split_into_live_and_restart_keys_and_the_overlay_accumulates() {
        let current = Config::default();
        let first = plan(&current, &json!({}), &json!({"detector": {"confidence": 0.3}})).unwrap();
        assert_eq!(first.live, ["detector.confidence"]);
        assert!(first.at_restart.is_empty());
        let second =
            plan(&first.config, &first.overlay, &json!({"redact": {"method": "pixelate"}, "api": {"rate_per_minute": 5}}))
                .unwrap();
        assert_eq!(second.live, ["redact.method"]);
        assert_eq!(second.at_restart, ["api.rate_per_minute"]);
        assert_eq!(
            second.overlay,
            json!({"detector": {"confidence": 0.3}, "redact": {"method": "pixelate"}, "api": {"rate_per_minute": 5}})
        );
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &second.overlay).unwrap();
        let reloaded = apply(&Config::default(), &load_overlay(dir.path()).unwrap()).unwrap();
        assert_eq!(reloaded.detector.confidence, 0.3);
        assert_eq!(reloaded.redact.method, "pixelate");
        assert_eq!(reloaded.api.rate_per_minute, 5);
    }

    #[test]
    fn bad_changes_are_refused_with_the_key_named() {
        let c = Config::default();
        let o = json!({});
        let err = plan(&c, &o, &json!({"detector": {"confidence": 7}})).unwrap_err();
        assert!(err.contains("confidence"), "{err}");
        let err = plan(&c, &o, &json!({"detector": {"confidance": 0.4}})).unwrap_err();
        assert!(err.contains("confidance"), "{err}");
        let err = plan(&c, &o, &json!({"redact": {"method": "smudge"}})).unwrap_err();
        assert!(err.contains("smudge"), "{err}");
        let err = plan(&c, &o, &json!({"server": {"state_dir": "/tmp"}})).unwrap_err();
        assert!(err.contains("server.state_dir"), "{err}");
        assert!(plan(&c, &o, &json!("confidence=0.4")).is_err());
        assert!(plan(&c, &o, &json!({})).is_err());
    }

    #[test]
    fn secrets_are_hidden() {
        let mut c = Config::default();
        c.webhooks.secret = Some("0123456789abcdef0123".into());
        c.mqtt = Some(crate::config::MqttConfig { password: Some("hunter2".into()), ..Default::default() });
        let shown = redacted(&c).to_string();
        assert!(!shown.contains("hunter2") && !shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains("<hidden>"));
    }
}
