//! The MQTT outbox: events kept on disk until the broker acknowledges them, oldest first, bounded
//! (the oldest are dropped and counted when full).

use rusqlite::{params, OptionalExtension};

use super::{now_ms, Store, StoreError};

/// The counter of events dropped because the outbox was full.
pub const DROPPED_COUNTER: &str = "mqtt_events_dropped";

/// One waiting event.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    pub seq: i64,
    /// Below the device's topic prefix, e.g. `events`.
    pub topic: String,
    pub payload: Vec<u8>,
}

impl Store {
    /// Queue an event; when more than `max` wait, drop the oldest. Returns how many were dropped.
    pub fn outbox_push(&self, topic: &str, payload: &[u8], max: usize) -> Result<u64, StoreError> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        tx.execute("INSERT INTO mqtt_outbox (topic, payload, created_at) VALUES (?1, ?2, ?3)", params![topic, payload, now_ms()])?;
        let dropped = tx.execute(
            "DELETE FROM mqtt_outbox WHERE seq IN
               (SELECT seq FROM mqtt_outbox ORDER BY seq DESC LIMIT -1 OFFSET ?1)",
            params![max.max(1) as i64],
        )? as u64;
        if dropped > 0 {
            tx.execute(
                "INSERT INTO counters (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                params![DROPPED_COUNTER, dropped as i64],
            )?;
        }
        tx.commit()?;
        Ok(dropped)
    }

    /// The oldest waiting event after `after` (a sequence number already in flight).
    pub fn outbox_next(&self, after: i64) -> Result<Option<OutboxEvent>, StoreError> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                "SELECT seq, topic, payload FROM mqtt_outbox WHERE seq > ?1 ORDER BY seq LIMIT 1",
                params![after],
                |r| Ok(OutboxEvent { seq: r.get(0)?, topic: r.get(1)?, payload: r.get(2)? }),
            )
            .optional()?)
    }

    /// The broker has the event: forget it.
    pub fn outbox_delete(&self, seq: i64) -> Result<(), StoreError> {
        self.conn().execute("DELETE FROM mqtt_outbox WHERE seq = ?1", params![seq])?;
        Ok(())
    }

    pub fn outbox_len(&self) -> Result<u64, StoreError> {
        Ok(self.conn().query_row("SELECT COUNT(*) FROM mqtt_outbox", [], |r| r.get::<_, i64>(0))? as u64)
    }

    pub fn counter(&self, name: &str) -> Result<u64, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT value FROM counters WHERE name = ?1", params![name], |r| r.get::<_, i64>(0))
            .optional()?
            .unwrap_or(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_in_order_and_the_oldest_are_dropped_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..5 {
            assert_eq!(store.outbox_push("events", format!("e{i}").as_bytes(), 3).unwrap(), u64::from(i >= 3));
        }
        assert_eq!(store.outbox_len().unwrap(), 3);
        assert_eq!(store.counter(DROPPED_COUNTER).unwrap(), 2);
        let first = store.outbox_next(0).unwrap().unwrap();
        assert_eq!(first.payload, b"e2");
        let second = store.outbox_next(first.seq).unwrap().unwrap();
        assert_eq!(second.payload, b"e3");
        store.outbox_delete(first.seq).unwrap();
        drop(store);
        // Still there after a restart.
        let store = Store::open(dir.path()).unwrap();
        let left: Vec<_> = std::iter::successors(store.outbox_next(0).unwrap(), |e| store.outbox_next(e.seq).unwrap())
            .map(|e| e.payload)
            .collect();
        assert_eq!(left, [b"e3".to_vec(), b"e4".to_vec()]);
    }
}
