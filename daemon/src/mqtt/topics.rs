//! The device's topic tree, all under one prefix (default `veil/<device_id>`).

#[derive(Debug, Clone)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.trim_end_matches('/').to_string() }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>/<suffix>`.
    pub fn under(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.prefix)
    }

    /// Retained `online` / `offline` (also the Last Will).
    pub fn status(&self) -> String {
        self.under("status")
    }

    pub fn telemetry(&self) -> String {
        self.under("telemetry")
    }

    pub fn detections(&self) -> String {
        self.under("detections")
    }

    pub fn snapshot(&self) -> String {
        self.under("snapshot")
    }

    /// Retained `ON` / `OFF`: whether the camera is capturing.
    pub fn capture_state(&self) -> String {
        self.under("capture")
    }

    /// Takes `ON` / `OFF` (the Home Assistant switch).
    pub fn capture_set(&self) -> String {
        self.under("capture/set")
    }

    /// What the device subscribes to for commands.
    pub fn commands_filter(&self) -> String {
        self.under("cmd/#")
    }

    /// The command name of a topic under `cmd/` (`config/set`), or `None` for a reply topic or
    /// anything else.
    pub fn command_name<'a>(&self, topic: &'a str) -> Option<&'a str> {
        let name = topic.strip_prefix(&self.prefix)?.strip_prefix("/cmd/")?;
        (!name.is_empty() && !name.ends_with("/reply") && name != "reply").then_some(name)
    }

    pub fn reply(&self, command: &str) -> String {
        self.under(&format!("cmd/{command}/reply"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_topics_are_recognised_and_replies_are_not_commands() {
        let t = Topics::new("veil/rig-7/");
        assert_eq!(t.status(), "veil/rig-7/status");
        assert_eq!(t.command_name("veil/rig-7/cmd/config/set"), Some("config/set"));
        assert_eq!(t.command_name("veil/rig-7/cmd/snapshot"), Some("snapshot"));
        assert_eq!(t.command_name("veil/rig-7/cmd/config/set/reply"), None);
        assert_eq!(t.command_name("veil/rig-8/cmd/snapshot"), None);
        assert_eq!(t.reply("config/get"), "veil/rig-7/cmd/config/get/reply");
    }
}
