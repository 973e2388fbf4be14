//! The log's sequencer under a steady load, on SQLite and PostgreSQL: with events
//! committed at 1,000 a second, each is covered by a signed tree head (one whose
//! size passes the entry's index) within a second of its commit, and heads are
//! signed at most about twice a second however fast entries come. And a device that
//! holds a head older than the recent ones polls carry a proof from gets its
//! consistency proof in a later answer, made in the background.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use patchwarden::db::models::log as rows;
use patchwarden::db::schema::log_entries;
use patchwarden::jobs::Job;
use patchwarden::services::log;
use support::{InstanceJobs, TestApp};

const RATE: usize = 1000;
const SECONDS: usize = 3;
/// Events committed per tick of 10 ms.
const PER_TICK: usize = RATE / 100;

#[actix_web::test]
async fn under_a_thousand_events_a_second_each_is_covered_by_a_signed_head_within_a_second() {
    for app in TestApp::each().await {
        let name = app.backend.name();
        let jobs = InstanceJobs::of(app.state.clone().into_inner(), &[Job::IntegrateLog]);
        let heads_before = app.db(|conn| Ok(rows::heads(conn, 1000)?)).await.len();

        // Watches the newest head, noting when each size was first seen.
        let seen: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
        let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let watcher = {
            let (seen, watching, state) = (seen.clone(), watching.clone(), app.state.clone());
            actix_web::rt::spawn(async move {
                while watching.load(std::sync::atomic::Ordering::SeqCst) {
                    let size = state
                        .db
                        .query(|conn| Ok(rows::latest_head(conn)?.map_or(0, |h| h.tree_size as u64)))
                        .await
                        .unwrap();
                    {
                        let mut seen = seen.lock().unwrap();
                        if seen.last().is_none_or(|(_, last)| *last != size) {
                            seen.push((Instant::now(), size));
                        }
                    }
                    actix_web::rt::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };

        // The load: PER_TICK events every 10 ms, each in its own transaction, each
        // noted with the instant before its batch began (so latencies are not
        // understated).
        let mut committed: Vec<(usize, Instant)> = Vec::with_capacity(RATE * SECONDS);
        let mut ticks = actix_web::rt::time::interval(Duration::from_millis(10));
        let started = Instant::now();
        for tick in 0..SECONDS * 100 {
            ticks.tick().await;
            let before = Instant::now();
            // The tick's events on two connections at once, as events from several
            // requests commit: one connection alone cannot keep the rate on a
            // PostgreSQL that syncs every commit on a busy two-core machine.
            let (first, half) = (tick * PER_TICK, PER_TICK / 2);
            tokio::join!(
                app.append_images(first, half),
                app.append_images(first + half, PER_TICK - half)
            );
            committed.extend((tick * PER_TICK..(tick + 1) * PER_TICK).map(|i| (i, before)));
        }
        let elapsed = started.elapsed();
        let total = committed.len() as u64;
        support::until("the last event is covered", Duration::from_secs(10), || {
            seen.lock().unwrap().last().is_some_and(|(_, size)| *size >= total)
        })
        .await;
        watching.store(false, std::sync::atomic::Ordering::SeqCst);
        watcher.await.unwrap();
        drop(jobs);
        assert!(
            elapsed < Duration::from_millis((SECONDS * 1000) as u64 * 11 / 10),
            "[{name}] the load ran at {:.0} events/s, not {RATE}",
            total as f64 / elapsed.as_secs_f64()
        );

        let indexes: HashMap<usize, u64> = app
            .db(|conn| {
                Ok(log_entries::table
                    .filter(log_entries::kind.eq("image.registered"))
                    .select((log_entries::subject, log_entries::idx))
                    .load::<(String, i64)>(conn)?)
            })
            .await
            .into_iter()
            .map(|(subject, idx)| {
                let n = usize::from_str_radix(subject.rsplit('/').next().unwrap(), 16).unwrap();
                (n, idx as u64)
            })
            .collect();
        assert_eq!(indexes.len(), committed.len(), "[{name}] every event has its entry");
        let seen = seen.lock().unwrap().clone();
        let mut latencies: Vec<Duration> = committed
            .iter()
            .map(|(n, before)| {
                let idx = indexes[n];
                let (at, _) = seen.iter().find(|(_, size)| *size > idx).unwrap();
                at.saturating_duration_since(*before)
            })
            .collect();
        latencies.sort();
        let p99 = latencies[latencies.len() * 99 / 100];
        let max = *latencies.last().unwrap();
        eprintln!(
            "[{name}] event → covering head: p50 {:?}, p99 {p99:?}, max {max:?}",
            latencies[latencies.len() / 2]
        );
        assert!(p99 <= Duration::from_secs(1), "[{name}] p99 {p99:?}, max {max:?}");

        // Heads come at most about twice a second, not one per batch.
        let heads = app.db(|conn| Ok(rows::heads(conn, 1000)?)).await.len() - heads_before;
        assert!(heads >= SECONDS, "[{name}] {heads} heads in {SECONDS} s");
        assert!(heads <= 2 * SECONDS + 4, "[{name}] {heads} heads in {SECONDS} s");
    }
}

#[actix_web::test]
async fn a_device_holding_an_older_head_than_the_recent_ones_soon_gets_its_consistency_proof_in_the_answer() {
    use patchwarden::domain::merkle::verify_consistency;
    use serde_json::json;
    for app in TestApp::each().await {
        let name = app.backend.name();
        let f = support::patching::fixture(&app).await;
        let device = support::devices::enrol(&app, &f, "fw-old-head", "6.3.0r20").await;
        let token = device["token"].as_str().unwrap().to_owned();
        app.append_images(0, 1).await;
        let held = log::sign_now(&app.state).await.unwrap();
        // Forty heads later, the held one is not among those polls carry a proof from.
        for n in 1..=40 {
            app.append_images(n, 1).await;
            log::sign_now(&app.state).await.unwrap();
        }
        let body = json!({"version": "6.3.0r20", "log_size": held.tree_size});
        let first = support::devices::poll(&app, &token, body.clone()).await;
        assert!(first["log_consistency"].is_null(), "[{name}] {first}");
        // It is made in the background, and a later poll from that size carries it.
        let mut answer = first;
        let started = Instant::now();
        while answer["log_consistency"].is_null() {
            assert!(started.elapsed() < Duration::from_secs(10), "[{name}] no proof came");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            answer = support::devices::poll(&app, &token, body.clone()).await;
        }
        let head = &answer["log_head"];
        let proof: Vec<[u8; 32]> = answer["log_consistency"]["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| hex::decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
            .collect();
        let root = |hex_root: &str| -> [u8; 32] { hex::decode(hex_root).unwrap().try_into().unwrap() };
        assert_eq!(answer["log_consistency"]["from"], held.tree_size, "[{name}]");
        verify_consistency(
            held.tree_size,
            head["tree_size"].as_u64().unwrap(),
            &root(&held.root_hash),
            &root(head["root_hash"].as_str().unwrap()),
            &proof,
        )
        .unwrap();
    }
}
