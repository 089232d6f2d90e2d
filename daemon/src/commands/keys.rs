//! `veil keys create|list|revoke`: API keys in the state directory's database. A new key is
//! printed once, alone on the last line of stdout; only its hash is kept.

use crate::cli::{KeysAction, KeysCmd};

pub fn run(cmd: KeysCmd) -> anyhow::Result<i32> {
    let store = super::open_store(&cmd.config, &cmd.state_dir)?;
    match cmd.action {
        KeysAction::Create { name, admin } => {
            let (record, key) = store.create_key(&name, admin)?;
            let kind = if admin { "admin API key" } else { "API key" };
            println!("created {kind} {} (id {}, prefix {}); it is shown only now:", record.name, record.id, record.prefix);
            println!("{key}");
        }
        KeysAction::List { json } => {
            let keys = store.list_keys()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!("{:<5} {:<10} {:<12} {:<12} {:<6} name", "id", "prefix", "created", "revoked", "admin");
                for k in keys {
                    let revoked = k.revoked_at.map(|t| t.to_string()).unwrap_or_else(|| "-".into());
                    let admin = if k.admin { "yes" } else { "-" };
                    println!("{:<5} {:<10} {:<12} {:<12} {:<6} {}", k.id, k.prefix, k.created_at, revoked, admin, k.name);
                }
            }
        }
        KeysAction::Revoke { key } => {
            let k = store.revoke_key(&key)?;
            println!("revoked API key {} (id {}, prefix {})", k.name, k.id, k.prefix);
        }
    }
    Ok(0)
}
