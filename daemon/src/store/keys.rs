//! API keys: `veil_<prefix>_<secret>`, shown once at creation and stored only as a sha256.
//! Lookup by the public prefix, comparison of the hashes in constant time.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{now_s, Store, StoreError};

/// A key's public record (never the key itself).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// May manage keys through `/api/v1/admin/keys`.
    pub admin: bool,
    /// The key's last four characters (keys made before they were kept have none).
    pub key_suffix: Option<String>,
    /// Switched off through the admin API (`is_active: false`); a disabled key is refused.
    pub disabled: bool,
    pub last_used_at: Option<i64>,
    /// Requests counted for the key, all days.
    pub request_count: i64,
}

/// The columns every key query reads, in [`key_from_row`]'s order.
const KEY_COLUMNS: &str = "id, name, prefix, created_at, revoked_at, admin, key_suffix, disabled, last_used_at,
    (SELECT COALESCE(SUM(requests), 0) FROM key_usage WHERE key_usage.key_id = api_keys.id)";

fn key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: r.get(0)?,
        name: r.get(1)?,
        prefix: r.get(2)?,
        created_at: r.get(3)?,
        revoked_at: r.get(4)?,
        admin: r.get(5)?,
        key_suffix: r.get(6)?,
        disabled: r.get(7)?,
        last_used_at: r.get(8)?,
        request_count: r.get(9)?,
    })
}

impl ApiKey {
    /// Usable now: neither revoked nor disabled.
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none() && !self.disabled
    }
}

fn random_hex(bytes: usize) -> Result<String, StoreError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| StoreError::NotFound(format!("no randomness for a key: {e}")))?;
    Ok(hex::encode(buf))
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A key name as it is kept (trimmed), if it is one: 1..100 bytes.
pub fn key_name(name: &str) -> Option<&str> {
    let name = name.trim();
    (!name.is_empty() && name.len() <= 100).then_some(name)
}

/// Whether `s` has the shape of a veil API key (it may still be no key at all).
pub fn is_key_shaped(s: &str) -> bool {
    prefix_of(s).is_some()
}

/// The prefix part of a presented key, if it has the right shape.
fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("veil_")?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == 8 && secret.len() == 64 && prefix.bytes().chain(secret.bytes()).all(|b| b.is_ascii_hexdigit()))
        .then_some(prefix)
}

impl Store {
    /// Make a key named `name`; returns its record and the key, which is not stored anywhere.
    pub fn create_key(&self, name: &str, admin: bool) -> Result<(ApiKey, String), StoreError> {
        let name = key_name(name).ok_or_else(|| StoreError::NotFound("a key name must be 1..100 characters".into()))?;
        let conn = self.conn();
        loop {
            let prefix = random_hex(4)?;
            let key = format!("veil_{prefix}_{}", random_hex(32)?);
            let created_at = now_s();
            let suffix = key[key.len() - 4..].to_string();
            let inserted = conn.execute(
                "INSERT OR IGNORE INTO api_keys (name, prefix, key_sha256, created_at, admin, key_suffix)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![name, prefix, sha256_hex(&key), created_at, admin, suffix],
            )?;
            if inserted == 1 {
                let id = conn.last_insert_rowid();
                let record = ApiKey {
                    id,
                    name: name.to_string(),
                    prefix,
                    created_at,
                    revoked_at: None,
                    admin,
                    key_suffix: Some(suffix),
                    disabled: false,
                    last_used_at: None,
                    request_count: 0,
                };
                return Ok((record, key));
            }
            // A prefix collision (1 in 4 billion): draw again.
        }
    }

    pub fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY id"))?;
        let rows = stmt.query_map([], key_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One key's record by id.
    pub fn get_key(&self, id: i64) -> Result<Option<ApiKey>, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"), params![id], key_from_row)
            .optional()?)
    }

    /// Rename a key and/or switch it on or off; `None` when there is no such key.
    pub fn update_key(&self, id: i64, name: Option<&str>, active: Option<bool>) -> Result<Option<ApiKey>, StoreError> {
        if let Some(name) = name {
            let name = key_name(name).ok_or_else(|| StoreError::NotFound("a key name must be 1..100 characters".into()))?;
            self.conn().execute("UPDATE api_keys SET name = ?1 WHERE id = ?2", params![name, id])?;
        }
        if let Some(active) = active {
            self.conn().execute("UPDATE api_keys SET disabled = ?1 WHERE id = ?2", params![!active, id])?;
        }
        self.get_key(id)
    }

    /// Delete a key's record for good (its usage counts go with it); false when there was none.
    pub fn delete_key(&self, id: i64) -> Result<bool, StoreError> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        tx.execute("DELETE FROM key_usage WHERE key_id = ?1", params![id])?;
        let gone = tx.execute("DELETE FROM api_keys WHERE id = ?1", params![id])?;
        tx.commit()?;
        Ok(gone == 1)
    }

    /// Revoke by id or by prefix; revoking twice is fine.
    pub fn revoke_key(&self, id_or_prefix: &str) -> Result<ApiKey, StoreError> {
        let conn = self.conn();
        let changed = conn.execute(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?1) WHERE CAST(id AS TEXT) = ?2 OR prefix = ?2",
            params![now_s(), id_or_prefix],
        )?;
        drop(conn);
        if changed == 0 {
            return Err(StoreError::NotFound(format!("no API key with id or prefix {id_or_prefix:?}")));
        }
        self.list_keys()?
            .into_iter()
            .find(|k| k.id.to_string() == id_or_prefix || k.prefix == id_or_prefix)
            .ok_or_else(|| StoreError::NotFound(id_or_prefix.to_string()))
    }

    /// The live key matching `presented`, if any. The stored and presented hashes are compared
    /// in constant time.
    pub fn verify_key(&self, presented: &str) -> Result<Option<ApiKey>, StoreError> {
        let Some(prefix) = prefix_of(presented) else { return Ok(None) };
        let conn = self.conn();
        let row = conn
            .query_row(
                &format!("SELECT {KEY_COLUMNS}, key_sha256 FROM api_keys WHERE prefix = ?1"),
                params![prefix],
                |r| Ok((key_from_row(r)?, r.get::<_, String>(10)?)),
            )
            .optional()?;
        let Some((key, stored)) = row else { return Ok(None) };
        let matches: bool = sha256_hex(presented).as_bytes().ct_eq(stored.as_bytes()).into();
        Ok((matches && key.is_active()).then_some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_verify_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (record, key) = store.create_key("field laptop", false).unwrap();
        assert!(key.starts_with(&format!("veil_{}_", record.prefix)) && key.len() == 5 + 8 + 1 + 64);
        assert_eq!(store.verify_key(&key).unwrap().unwrap().id, record.id);
        // The database holds the hash, never the key.
        let db = std::fs::read(store.path()).unwrap_or_default();
        let wal = std::fs::read(dir.path().join("veil.db-wal")).unwrap_or_default();
        let needle = &key.as_bytes()[14..];
        assert!(!db.windows(needle.len()).chain(wal.windows(needle.len())).any(|w| w == needle));
        // Same prefix, wrong secret; garbage; then revoked.
        let forged = format!("{}{}", &key[..14], "0".repeat(64));
        assert!(store.verify_key(&forged).unwrap().is_none());
        assert!(store.verify_key("hunter2").unwrap().is_none());
        store.revoke_key(&record.prefix).unwrap();
        assert!(store.verify_key(&key).unwrap().is_none());
        assert!(store.list_keys().unwrap()[0].revoked_at.is_some());
        assert!(store.revoke_key("nope").is_err());
        // Disabled keys are refused until switched back on; a deleted key is gone.
        let (other, key2) = store.create_key("second", false).unwrap();
        assert_eq!(other.key_suffix.as_deref(), Some(&key2[key2.len() - 4..]));
        let off = store.update_key(other.id, Some("renamed"), Some(false)).unwrap().unwrap();
        assert!(off.disabled && off.name == "renamed");
        assert!(store.verify_key(&key2).unwrap().is_none());
        store.update_key(other.id, None, Some(true)).unwrap();
        assert!(store.verify_key(&key2).unwrap().is_some());
        assert!(store.delete_key(other.id).unwrap());
        assert!(!store.delete_key(other.id).unwrap());
        assert!(store.verify_key(&key2).unwrap().is_none() && store.get_key(other.id).unwrap().is_none());
        assert!(store.create_key("  ", false).is_err());
    }
}
