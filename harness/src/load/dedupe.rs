//! The idempotent-consumer pattern from the seed article: processed message ids live in the same
//! database as the processing's effect and are written in the same transaction, so a redelivered
//! message is recognised and skipped. All consumer processes of a run share one SQLite file, as the
//! instances of one service share its database.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, TransactionBehavior};

use crate::message::MsgId;

pub struct ProcessedIds {
    db: Connection,
}

pub enum Outcome {
    /// First time: the effect was applied and the id recorded, atomically.
    Applied,
    /// Seen before: nothing was done.
    Duplicate,
}

impl ProcessedIds {
    pub fn open(path: &Path) -> Result<Self> {
        let db = Connection::open(path)
            .with_context(|| format!("opening processed-ids store {}", path.display()))?;
        db.busy_timeout(Duration::from_secs(30))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS processed_messages (id TEXT PRIMARY KEY, consumer INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS key_effects (key INTEGER PRIMARY KEY, applied INTEGER NOT NULL);",
        )?;
        Ok(ProcessedIds { db })
    }

    /// Record the id and apply the effect (a per-key counter) in one transaction, unless the id
    /// was processed before.
    pub fn process(&mut self, id: MsgId, consumer: u32) -> Result<Outcome> {
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO processed_messages (id, consumer) VALUES (?1, ?2)",
            params![id.dedupe_id(), consumer],
        )?;
        if inserted == 0 {
            return Ok(Outcome::Duplicate);
        }
        tx.execute("INSERT INTO key_effects (key, applied) VALUES (?1, 1) ON CONFLICT(key) DO UPDATE SET applied = applied + 1", params![id.key])?;
        tx.commit()?;
        Ok(Outcome::Applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_processing_of_an_id_is_a_duplicate_even_from_another_process_handle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sqlite");
        let mut a = ProcessedIds::open(&path).unwrap();
        let mut b = ProcessedIds::open(&path).unwrap();
        let id = MsgId {
            producer: 0,
            key: 3,
            seq: 9,
        };
        assert!(matches!(a.process(id, 0).unwrap(), Outcome::Applied));
        assert!(matches!(b.process(id, 1).unwrap(), Outcome::Duplicate));
        assert!(matches!(
            b.process(MsgId { seq: 10, ..id }, 1).unwrap(),
            Outcome::Applied
        ));
        let applied: i64 =
            a.db.query_row("SELECT applied FROM key_effects WHERE key = 3", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(applied, 2, "the effect happened once per distinct id");
    }
}
