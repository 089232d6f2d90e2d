//! `veil config check FILE` and `veil config defaults`.

use crate::cli::{ConfigAction, ConfigCmd};
use crate::config::Config;

/// The documented defaults; a test keeps them equal to the embedded ones.
const EXAMPLE: &str = include_str!("../../../veil.example.toml");

pub fn run(cmd: ConfigCmd) -> anyhow::Result<i32> {
    match cmd.action {
        ConfigAction::Defaults => {
            print!("{EXAMPLE}");
            Ok(0)
        }
        ConfigAction::Check { file } => {
            let config = Config::load(&file)?;
            config.validate().map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            // The files the config names must be readable now, not at the first reconnect.
            if let Some(m) = &config.mqtt {
                let id = crate::mqtt::settings::device_id(m);
                crate::mqtt::settings::Connection::from_config(m, &id)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            }
            for (key, path) in [("api.tls_cert", &config.api.tls_cert), ("api.tls_key", &config.api.tls_key)] {
                if let Some(p) = path {
                    std::fs::metadata(p).map_err(|e| anyhow::anyhow!("{}: {key} {}: {e}", file.display(), p.display()))?;
                }
            }
            println!("{}: ok", file.display());
            Ok(0)
        }
    }
}
