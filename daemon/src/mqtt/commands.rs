//! Commands on `<prefix>/cmd/<name>`: a JSON object with an optional correlation `id`, answered
//! on `<prefix>/cmd/<name>/reply` with `{"id", "ok": true, "result"}` or `{"id", "ok": false,
//! "error"}`. Also the Home Assistant capture switch (`capture/set`, `ON`/`OFF`).

use serde_json::{json, Value};

use super::session::Message;
use super::topics::Topics;
use crate::device::{Device, Refused};

pub const COMMANDS: &[&str] = &["config/get", "config/set", "capture/start", "capture/stop", "snapshot", "backend/set"];

/// Handle one message received on a command topic; returns what to publish.
pub fn handle(device: &Device, topics: &Topics, topic: &str, payload: &[u8]) -> Vec<Message> {
    if topic == topics.capture_set() {
        let wanted = String::from_utf8_lossy(payload).trim().to_ascii_uppercase();
        match wanted.as_str() {
            "ON" | "OFF" => {
                if let Err(e) = device.set_capture(wanted == "ON") {
                    tracing::warn!("mqtt: capture/set: {e}");
                }
            }
            other => tracing::warn!("mqtt: capture/set: expected ON or OFF, got {other:?}"),
        }
        return Vec::new();
    }
    let Some(name) = topics.command_name(topic) else { return Vec::new() };
    let reply_topic = topics.reply(name);
    let request: Value = if payload.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(payload) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return vec![reply(reply_topic, &Value::Null, Err(Refused("the payload must be a JSON object".into())))],
            Err(e) => return vec![reply(reply_topic, &Value::Null, Err(Refused(format!("the payload is not JSON: {e}"))))],
        }
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let mut out = Vec::new();
    let outcome = match name {
        "config/get" => Ok(device.config_json()),
        "config/set" => match request.get("config") {
            Some(patch) => device.set_config(patch),
            None => Err(Refused("config/set needs \"config\": the keys to change, e.g. {\"detector\": {\"confidence\": 0.4}}".into())),
        },
        "capture/start" => device.set_capture(true),
        "capture/stop" => device.set_capture(false),
        "snapshot" => device.snapshot().map(|image| {
            out.push(Message::reliable(topics.snapshot(), image.jpeg.as_ref().clone()));
            json!({"topic": topics.snapshot(), "frame_id": image.frame_id, "bytes": image.jpeg.len(), "content_type": "image/jpeg"})
        }),
        "backend/set" => match request.get("backend").and_then(Value::as_str) {
            Some(backend) => device.set_backend(backend, request.get("precision").and_then(Value::as_str)),
            None => Err(Refused("backend/set needs \"backend\" (and optionally \"precision\": int8 or fp32)".into())),
        },
        other => Err(Refused(format!("unknown command {other:?}; known: {}", COMMANDS.join(", ")))),
    };
    if let Err(e) = &outcome {
        tracing::warn!("mqtt: command {name} refused: {e}");
    }
    out.push(reply(reply_topic, &id, outcome));
    out
}

fn reply(topic: String, id: &Value, outcome: Result<Value, Refused>) -> Message {
    let body = match outcome {
        Ok(result) => json!({"id": id, "ok": true, "result": result}),
        Err(Refused(error)) => json!({"id": id, "ok": false, "error": error}),
    };
    Message::reliable(topic, body.to_string().into_bytes())
}
