//! Home Assistant MQTT discovery: retained `config` documents that make the device's main
//! sensors (from `telemetry`) and a capture switch appear in Home Assistant by themselves.

use serde_json::{json, Value};

use super::session::Message;
use super::topics::Topics;

/// (telemetry field, display name, unit, device class, state class)
const SENSORS: &[(&str, &str, Option<&str>, Option<&str>, &str)] = &[
    ("temperature_c", "Temperature", Some("°C"), Some("temperature"), "measurement"),
    ("cpu_percent", "CPU", Some("%"), None, "measurement"),
    ("fps_in", "Frames in", Some("fps"), None, "measurement"),
    ("fps_out", "Frames out", Some("fps"), None, "measurement"),
    ("inference_p95_ms", "Inference p95", Some("ms"), Some("duration"), "measurement"),
    ("dropped_frames", "Dropped frames", None, None, "total_increasing"),
    ("queue_depth", "Frame queue", None, None, "measurement"),
    ("jobs_pending", "Jobs pending", None, None, "measurement"),
    ("events_queued", "Events waiting", None, None, "measurement"),
    ("disk_free_mb", "Disk free", Some("MB"), Some("data_size"), "measurement"),
];

/// Every discovery document for this device.
pub fn documents(discovery_prefix: &str, device_id: &str, topics: &Topics) -> Vec<Message> {
    let node = format!("veil_{device_id}");
    let device = json!({
        "identifiers": [node],
        "name": format!("veil {device_id}"),
        "manufacturer": "veil",
        "model": "on-device privacy redaction",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    let common = |name: &str, object: &str| -> Value {
        json!({
            "name": name,
            "unique_id": format!("{node}_{object}"),
            "object_id": format!("{node}_{object}"),
            "availability_topic": topics.status(),
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
        })
    };
    let mut out = Vec::new();
    for (field, name, unit, class, state_class) in SENSORS {
        let mut doc = common(name, field);
        doc["state_topic"] = json!(topics.telemetry());
        doc["value_template"] = json!(format!("{{{{ value_json.{field} }}}}"));
        doc["state_class"] = json!(state_class);
        if let Some(u) = unit {
            doc["unit_of_measurement"] = json!(u);
        }
        if let Some(c) = class {
            doc["device_class"] = json!(c);
        }
        out.push(Message::retained(format!("{discovery_prefix}/sensor/{node}/{field}/config"), doc.to_string().into_bytes()));
    }
    let mut switch = common("Capture", "capture");
    switch["command_topic"] = json!(topics.capture_set());
    switch["state_topic"] = json!(topics.capture_state());
    switch["payload_on"] = json!("ON");
    switch["payload_off"] = json!("OFF");
    switch["icon"] = json!("mdi:cctv");
    out.push(Message::retained(format!("{discovery_prefix}/switch/{node}/capture/config"), switch.to_string().into_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sensor_reads_a_telemetry_field_and_the_switch_drives_capture() {
        let topics = Topics::new("veil/rig-7");
        let docs = documents("homeassistant", "rig-7", &topics);
        assert_eq!(docs.len(), SENSORS.len() + 1);
        assert!(docs.iter().all(|m| m.retain));
        let temp: Value = serde_json::from_slice(&docs[0].payload).unwrap();
        assert_eq!(docs[0].topic, "homeassistant/sensor/veil_rig-7/temperature_c/config");
        assert_eq!(temp["value_template"], "{{ value_json.temperature_c }}");
        assert_eq!(temp["state_topic"], "veil/rig-7/telemetry");
        assert_eq!(temp["availability_topic"], "veil/rig-7/status");
        let switch: Value = serde_json::from_slice(&docs.last().unwrap().payload).unwrap();
        assert_eq!(switch["command_topic"], "veil/rig-7/capture/set");
        assert_eq!(switch["state_topic"], "veil/rig-7/capture");
        // Every field a sensor names exists in the telemetry payload.
        let fields = serde_json::to_value(crate::telemetry::Telemetry::default()).unwrap();
        for (field, ..) in SENSORS {
            assert!(fields.get(field).is_some(), "telemetry has no {field}");
        }
    }
}
