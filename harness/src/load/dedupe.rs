//! The idempotent-consumer pattern from the seed article: processed message ids live in the same
//! database as the processing's effect and are written in the same transaction, so a redelivered
//! message is recognised and skipped. All consumer processes of a run share one SQLite file, as the
//! instances of one service share its database.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, TransactionBehavior};

use crate::message::MsgId;

/// The store's file, in the broker's run directory, shared by every consumer process.
pub const STORE_FILE: &str = "processed-ids.sqlite";

pub struct ProcessedIds {
    db: Connection,
}

pub enum Outcome {
    /// First time: the effect was applied and the id recorded, atomically.
    Applied,
    /// Seen before: nothing was done.
    Duplicate,
}

/// How long a consumer keeps trying to open the store while the others are setting it up.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

impl ProcessedIds {
    /// Open (creating if needed) the store that every consumer of the run shares. They start
    /// together: an attempt that finds the database locked by another's setup is tried again.
    pub fn open(path: &Path) -> Result<Self> {
        let deadline = std::time::Instant::now() + OPEN_TIMEOUT;
        loop {
            match Self::try_open(path) {
                Ok(store) => return Ok(store),
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("opening processed-ids store {}", path.display()))
                }
            }
        }
    }

    fn try_open(path: &Path) -> rusqlite::Result<Self> {
        let mut db = Connection::open(path)?;
        db.busy_timeout(OPEN_TIMEOUT)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        // Immediate: take the write lock first, waiting for it, rather than read the schema and
        // then fail to write because another consumer wrote meanwhile.
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS processed_messages (id TEXT PRIMARY KEY, consumer INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS key_effects (key INTEGER PRIMARY KEY, applied INTEGER NOT NULL);",
        )?;
        tx.commit()?;
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

/// Every row of the store at `path` once its consumers are gone: each processed id with the
/// consumer that committed it. Ids that are not this harness's (`producer-key-seq`) are counted
/// apart, so a damaged row cannot hide.
pub fn rows(path: &Path) -> Result<(Vec<(MsgId, u32)>, u64)> {
    let db = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening processed-ids store {}", path.display()))?;
    db.busy_timeout(OPEN_TIMEOUT)?;
    let mut stmt = db
        .prepare("SELECT id, consumer FROM processed_messages")
        .with_context(|| format!("reading processed-ids store {}", path.display()))?;
    let mut out = Vec::new();
    let mut foreign = 0;
    let mut q = stmt.query([])?;
    while let Some(row) = q.next()? {
        let id: String = row.get(0)?;
        let consumer: u32 = row.get(1)?;
        match MsgId::from_dedupe_id(&id) {
            Some(id) => out.push((id, consumer)),
            None => foreign += 1,
        }
    }
    Ok((out, foreign))
}

/// SQLite's "try again later": another connection holds the lock.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Consumer processes start together and open the one store at once. SQLite refuses a
    /// transaction that reads and then writes while another connection writes (no waiting, to
    /// avoid a deadlock), so a naive open failed with "database is locked" now and then and its
    /// consumer never started (1 of 30 runs of idempotent-consumer).
    #[test]
    fn many_consumers_opening_a_new_store_at_once_all_succeed() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("p.sqlite");
            let start = std::sync::Arc::new(std::sync::Barrier::new(8));
            let opened: Vec<_> = (0..8)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        ProcessedIds::open(&path).map(|_| ())
                    })
                })
                .collect();
            for o in opened {
                if let Err(e) = o.join().unwrap() {
                    panic!("round {round}: {e:#}");
                }
            }
        }
    }

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
