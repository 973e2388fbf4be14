//! The transparency log at scale, through the same service calls the server makes:
//! fills a log to TOTAL entries (a thousand appends per transaction, integrated as
//! they go), then times appends as events make them — WRITERS threads, one
//! transaction per event, while a sequencer integrates what is pending every
//! 100 ms as the `integrate-log` job does — and the generation of inclusion and
//! consistency proofs at that size, and hashes every entry again as an auditor
//! does. Prints one JSON object.
//!
//!   log-bench DATABASE_URL TOTAL [SINGLE] [PROOFS] [WRITERS]   e.g. log.db 1000000 20000 2000 8

use std::time::{Duration, Instant};

use anyhow::Context;
use argon2::password_hash::rand_core::{OsRng, RngCore};

use patchwarden::db::models::log as rows;
use patchwarden::db::{DatabaseUrl, Db, DbConnection};
use patchwarden::domain::event::{Actor, Event};
use patchwarden::domain::merkle::{leaf_hash, Frontier};
use patchwarden::services::log::{self, consistency_in, inclusion_in};
use patchwarden::services::ServiceError;

fn record(i: u64) -> Event {
    Event::ImageRegistered {
        product: "bench".into(),
        sha256: format!("{i:064x}"),
        version: "6.3.0r21".into(),
        platform: String::new(),
    }
}

/// Entries integrated by one run of the sequencer, and how long it took.
type Batch = (usize, Duration);

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at].as_secs_f64() * 1000.0
}

fn timed(mut samples: Vec<Duration>) -> serde_json::Value {
    samples.sort_unstable();
    serde_json::json!({
        "median_ms": percentile(&samples, 0.5),
        "p99_ms": percentile(&samples, 0.99),
        "max_ms": percentile(&samples, 1.0),
    })
}

fn random_below(n: u64) -> u64 {
    OsRng.next_u64() % n.max(1)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: log-bench DATABASE_URL TOTAL [SINGLE] [PROOFS]";
    let url = DatabaseUrl::parse(args.get(1).context(usage)?).map_err(anyhow::Error::msg)?;
    let total: u64 = args.get(2).context(usage)?.parse().context(usage)?;
    let single: u64 = args.get(3).map_or(Ok(5000), |s| s.parse()).context(usage)?;
    let proofs: u64 = args.get(4).map_or(Ok(2000), |s| s.parse()).context(usage)?;
    let writers: u64 = args.get(5).map_or(Ok(8), |s| s.parse()).context(usage)?;
    let db = Db::open(&url, writers as u32 + 2)?;
    let mut conn = db.conn()?;
    let conn: &mut DbConnection = &mut conn;

    // Fill, a thousand appends per transaction, integrated as they go.
    let start = rows::size(conn)?;
    let fill_from = Instant::now();
    let mut i = start;
    while i < total.saturating_sub(single) {
        let end = (i + 1000).min(total.saturating_sub(single));
        conn.write_transaction(|conn| {
            for n in i..end {
                log::append(conn, &record(n), &Actor::Cli)?;
            }
            Ok::<_, ServiceError>(())
        })?;
        log::integrate(conn)?;
        i = end;
    }
    let filled = i - start;
    let fill_rate = filled as f64 / fill_from.elapsed().as_secs_f64().max(1e-9);

    // Appends as events make them: each its own transaction, from WRITERS threads
    // at once, while the sequencer integrates every 100 ms.
    let from = Instant::now();
    let writing = std::sync::atomic::AtomicBool::new(true);
    let (latencies, batches) = std::thread::scope(|scope| -> anyhow::Result<(Vec<Duration>, Vec<Batch>)> {
        let sequencer = scope.spawn(|| -> anyhow::Result<Vec<Batch>> {
            let mut conn = db.conn()?;
            let mut batches = Vec::new();
            loop {
                let done = !writing.load(std::sync::atomic::Ordering::SeqCst);
                let began = Instant::now();
                let count = log::integrate(&mut conn)?;
                if count > 0 {
                    batches.push((count, began.elapsed()));
                }
                if done {
                    return Ok(batches);
                }
                std::thread::sleep(Duration::from_millis(100).saturating_sub(began.elapsed()));
            }
        });
        let per_writer = single / writers;
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let db = &db;
                scope.spawn(move || -> anyhow::Result<Vec<Duration>> {
                    let mut conn = db.conn()?;
                    let mut latencies = Vec::with_capacity(per_writer as usize);
                    for n in 0..per_writer {
                        let began = Instant::now();
                        let event = record(i + w * per_writer + n);
                        conn.write_transaction(|conn| log::append(conn, &event, &Actor::Cli))?;
                        latencies.push(began.elapsed());
                    }
                    Ok(latencies)
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for handle in handles {
            latencies.extend(handle.join().map_err(|_| anyhow::anyhow!("a writer panicked"))??);
        }
        writing.store(false, std::sync::atomic::Ordering::SeqCst);
        let batches = sequencer
            .join()
            .map_err(|_| anyhow::anyhow!("the sequencer panicked"))??;
        Ok((latencies, batches))
    })?;
    let appended = latencies.len() as u64;
    let elapsed = from.elapsed().as_secs_f64().max(1e-9);
    let single_rate = appended as f64 / elapsed;
    let size = rows::size(conn)?;
    anyhow::ensure!(
        size == i + appended,
        "the log holds {size} entries, not {}",
        i + appended
    );
    let integrated: usize = batches.iter().map(|(n, _)| n).sum();
    let integration_time: f64 = batches.iter().map(|(_, t)| t.as_secs_f64()).sum();
    let largest = batches.iter().map(|(n, _)| *n).max().unwrap_or(0);

    // Proofs at this size.
    let mut inclusion = Vec::new();
    let mut consistency = Vec::new();
    for _ in 0..proofs {
        let began = Instant::now();
        let proof = inclusion_in(conn, random_below(size), size)?;
        inclusion.push(began.elapsed());
        assert!(!proof.proof.is_empty());
        let began = Instant::now();
        consistency_in(conn, 1 + random_below(size - 1), size)?;
        consistency.push(began.elapsed());
    }

    // An auditor's pass: read every entry and hash the tree again.
    let began = Instant::now();
    let mut frontier = Frontier::default();
    let mut at = 0;
    while at < size {
        for entry in rows::entries(conn, at, (at + 1000).min(size))? {
            frontier.push(leaf_hash(entry.leaf.as_bytes()));
        }
        at = (at + 1000).min(size);
    }
    anyhow::ensure!(
        frontier.root() == rows::root(conn, size)?,
        "the entries do not hash to the stored root"
    );
    let audit = began.elapsed();

    let out = serde_json::json!({
        "backend": url.backend_name(),
        "size": size,
        "filled": filled,
        "fill_appends_per_s": fill_rate.round(),
        "event_appends_per_s": single_rate.round(),
        "writers": writers,
        "event_append": timed(latencies),
        "integrated_per_s_of_sequencer_time": (integrated as f64 / integration_time.max(1e-9)).round(),
        "largest_batch": largest,
        "inclusion_proof": timed(inclusion),
        "consistency_proof": timed(consistency),
        "rehash_all_s": audit.as_secs_f64(),
    });
    println!("{out}");
    Ok(())
}
