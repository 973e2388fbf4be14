//! The transparency log on every backend: proofs against an independent reading of
//! the RFC for every size up to a few hundred entries; the API (heads, entries,
//! proofs, publish answers, poll offers, bad input); heads signed again when
//! nothing changed; an entry rewritten in the database found by `audit`; devices
//! refusing older, expired and forked heads, unlogged offers and unsigned
//! downgrades while a signed rollback installs; the evidence bundle verified
//! offline, every flipped byte named; the operator's timeline; and appends that
//! survive kill -9 exactly with their events.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use diesel::RunQueryDsl;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{json, Value};

use patchwarden::api::log::{parse_proof, SignedHead};
use patchwarden::client::agent::{Agent, AgentConfig, Identity, Outcome};
use patchwarden::client::audit::{self, AuditRequest};
use patchwarden::db::models::log as rows;
use patchwarden::domain::log::TreeHead;
use patchwarden::domain::merkle::{self, Frontier, Node};
use patchwarden::jobs::{run_once, Job};
use patchwarden::services::log;
use patchwarden::services::ServiceError;
use support::devices::{enrol, poll, screenos_agent, server_key, signed, verified};
use support::endpoint::{Endpoint, Reply};
use support::patching::{file_bytes, fixture, publish_draft, publish_patch};
use support::process::{bootstrap_customer_admin, bootstrap_vendor, patchwarden, run, text, wait_healthy, Server};
use support::{backends, database_for, on_backend, TestApp};

/// RFC 6962 §2.1, written from the text and sharing nothing with the server.
mod rfc {
    use sha2::{Digest, Sha256};

    pub type H = [u8; 32];

    pub fn leaf(data: &[u8]) -> H {
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(data);
        h.finalize().into()
    }

    fn node(l: &H, r: &H) -> H {
        let mut h = Sha256::new();
        h.update([1u8]);
        h.update(l);
        h.update(r);
        h.finalize().into()
    }

    /// The largest power of two smaller than n.
    fn k(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    /// MTH over leaf hashes.
    pub fn mth(d: &[H]) -> H {
        match d.len() {
            0 => Sha256::digest([]).into(),
            1 => d[0],
            n => node(&mth(&d[..k(n)]), &mth(&d[k(n)..])),
        }
    }

    /// PATH(m, D[n]).
    pub fn path(m: usize, d: &[H]) -> Vec<H> {
        let n = d.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = k(n);
        if m < k {
            let mut p = path(m, &d[..k]);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = path(m - k, &d[k..]);
            p.push(mth(&d[..k]));
            p
        }
    }

    /// PROOF(m, D[n]).
    pub fn proof(m: usize, d: &[H]) -> Vec<H> {
        subproof(m, d, true)
    }

    fn subproof(m: usize, d: &[H], b: bool) -> Vec<H> {
        let n = d.len();
        if m == n {
            return if b { Vec::new() } else { vec![mth(d)] };
        }
        let k = k(n);
        if m <= k {
            let mut p = subproof(m, &d[..k], b);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = subproof(m - k, &d[k..], false);
            p.push(mth(&d[..k]));
            p
        }
    }
}

fn error_text<E: std::fmt::Display>(e: E) -> ServiceError {
    ServiceError::Internal(anyhow::anyhow!("{e}"))
}

/// Every entry's leaf hash as the independent implementation computes it, read
/// through the public API.
async fn leaves(app: &TestApp) -> Vec<rfc::H> {
    let mut out = Vec::new();
    loop {
        let (status, page) = app.get(&format!("/api/v1/log/entries?start={}", out.len()), "").await;
        assert_eq!(status, 200, "{page}");
        let entries = page["entries"].as_array().unwrap();
        if entries.is_empty() {
            return out;
        }
        for entry in entries {
            assert_eq!(entry["index"].as_u64(), Some(out.len() as u64));
            let hash = rfc::leaf(entry["leaf"].as_str().unwrap().as_bytes());
            assert_eq!(entry["leaf_hash"], hex::encode(hash), "{entry}");
            out.push(hash);
        }
    }
}

fn hashes(value: &Value) -> Vec<[u8; 32]> {
    let proof: Vec<String> = serde_json::from_value(value["proof"].clone()).unwrap();
    parse_proof(&proof).unwrap()
}

#[actix_web::test]
async fn proofs_match_an_independent_rfc_implementation_for_every_size() {
    for app in TestApp::each().await {
        app.append_images(0, 300).await;
        let leaves = leaves(&app).await;
        let n = leaves.len();
        assert!(n > 300, "{n}");

        // Every stored subtree, read once; then every proof the server plans for
        // every size, resolved from them, against the RFC's own.
        let wanted: Vec<Node> = (0..=9u32)
            .flat_map(|level| (0..(n as u64 >> level)).map(move |index| Node { level, index }))
            .collect();
        let stored = app.db(move |conn| Ok(rows::nodes(conn, &wanted)?)).await;
        let lookup = |node: Node| stored.get(&node).copied();
        let roots: Vec<rfc::H> = (0..=n).map(|size| rfc::mth(&leaves[..size])).collect();
        // Every size; in each every position while the tree is small, then the
        // edges, the powers of two and their neighbours, and a spread between.
        let positions = |size: usize| -> Vec<usize> {
            if size <= 64 {
                return (0..size).collect();
            }
            let mut at: Vec<usize> = (0..4)
                .chain(size - 4..size)
                .chain((0..size).step_by(size / 12))
                .collect();
            at.extend(
                (0..10)
                    .map(|b| 1usize << b)
                    .flat_map(|p| [p - 1, p, p + 1])
                    .filter(|&i| i < size),
            );
            at.sort_unstable();
            at.dedup();
            at
        };
        for size in 1..=n {
            let root = roots[size];
            for index in positions(size) {
                let proof = merkle::inclusion_plan(index as u64, size as u64)
                    .unwrap()
                    .resolve(lookup)
                    .unwrap();
                assert_eq!(proof, rfc::path(index, &leaves[..size]), "inclusion {index} in {size}");
                merkle::verify_inclusion(index as u64, size as u64, &leaves[index], &proof, &root).unwrap();
                // A wrong leaf, or the right leaf at the wrong size, fails.
                let wrong = leaves[(index + 1) % n];
                assert!(merkle::verify_inclusion(index as u64, size as u64, &wrong, &proof, &root).is_err());
                if size < n {
                    let next = size as u64 + 1;
                    assert!(
                        merkle::verify_inclusion(index as u64, next, &leaves[index], &proof, &roots[size + 1]).is_err()
                    );
                }
            }
            for from in positions(size).into_iter().map(|i| i + 1) {
                let proof = merkle::consistency_plan(from as u64, size as u64)
                    .unwrap()
                    .resolve(lookup)
                    .unwrap();
                assert_eq!(proof, rfc::proof(from, &leaves[..size]), "consistency {from} to {size}");
                merkle::verify_consistency(from as u64, size as u64, &roots[from], &root, &proof).unwrap();
                if from < size {
                    assert!(
                        merkle::verify_consistency(from as u64, size as u64, &roots[from - 1], &root, &proof).is_err()
                    );
                    assert!(merkle::verify_consistency(
                        from as u64,
                        size as u64,
                        &roots[from],
                        &roots[size - 1],
                        &proof
                    )
                    .is_err());
                }
            }
        }

        // The API serves the same, for sizes a signed head covers.
        log::sign_now(&app.state).await.unwrap();
        let samples: Vec<(usize, usize, usize)> = {
            let mut runner = proptest::test_runner::TestRunner::deterministic();
            let strategy = (1..=n).prop_flat_map(|size| (Just(size), 0..size, 1..=size));
            (0..64)
                .map(|_| strategy.new_tree(&mut runner).unwrap().current())
                .collect()
        };
        for (size, index, from) in samples {
            let (status, body) = app
                .get(
                    &format!("/api/v1/log/proof/inclusion?index={index}&tree_size={size}"),
                    "",
                )
                .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(hashes(&body), rfc::path(index, &leaves[..size]), "{body}");
            assert_eq!(body["leaf_hash"], hex::encode(leaves[index]));
            let (status, body) = app
                .get(&format!("/api/v1/log/proof/consistency?from={from}&to={size}"), "")
                .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(hashes(&body), rfc::proof(from, &leaves[..size]), "{body}");
        }
        let (_, head) = app.get("/api/v1/log/head", "").await;
        assert_eq!(head["tree_size"].as_u64(), Some(n as u64), "{head}");
        assert_eq!(head["root_hash"], hex::encode(roots[n]), "{head}");
    }
}

#[actix_web::test]
async fn bad_log_queries_are_refused_with_the_reason() {
    for app in TestApp::each().await {
        app.append_images(0, 5).await;
        log::sign_now(&app.state).await.unwrap();
        app.append_images(0, 3).await;
        let (_, head) = app.get("/api/v1/log/head", "").await;
        let size = head["tree_size"].as_u64().unwrap();
        for (path, status, names) in [
            (
                format!("/api/v1/log/proof/inclusion?index={size}&tree_size={size}"),
                422,
                "is not in a tree",
            ),
            (
                format!("/api/v1/log/proof/inclusion?index=0&tree_size={}", size + 2),
                422,
                "newest signed head covers",
            ),
            ("/api/v1/log/proof/inclusion?index=-1&tree_size=3".into(), 400, ""),
            ("/api/v1/log/proof/inclusion?index=1".into(), 400, ""),
            ("/api/v1/log/proof/consistency?from=0&to=3".into(), 422, "0 < from"),
            ("/api/v1/log/proof/consistency?from=4&to=3".into(), 422, "0 < from"),
            (
                "/api/v1/log/entries?start=5&end=2".into(),
                422,
                "end must not be below start",
            ),
            ("/api/v1/log/entries?start=99999".into(), 422, "past its end"),
            ("/api/v1/log/entries?start=0&limit=3".into(), 400, ""),
        ] {
            let (got, body) = app.get(&path, "").await;
            assert_eq!(got, status, "{path}: {body}");
            assert!(
                body["error"]["message"].as_str().unwrap().contains(names),
                "{path}: {body}"
            );
        }
        // Entries past the newest head are readable; at most 1000 per answer.
        let (status, page) = app.get("/api/v1/log/entries?start=0&end=100000", "").await;
        assert_eq!(status, 200);
        assert_eq!(
            page["entries"].as_array().unwrap().len() as u64,
            page["tree_size"].as_u64().unwrap()
        );
        assert!(page["tree_size"].as_u64().unwrap() > size);
    }
}

async fn inclusion_holds(app: &TestApp, index: u64, leaf: &str, head: &TreeHead) {
    let (status, proof) = app
        .get(
            &format!("/api/v1/log/proof/inclusion?index={index}&tree_size={}", head.tree_size),
            "",
        )
        .await;
    assert_eq!(status, 200, "{proof}");
    merkle::verify_inclusion(
        index,
        head.tree_size,
        &rfc::leaf(leaf.as_bytes()),
        &hashes(&proof),
        &head.root_hash,
    )
    .unwrap();
}

async fn entry_text(app: &TestApp, index: u64) -> String {
    let (_, page) = app
        .get(&format!("/api/v1/log/entries?start={index}&end={}", index + 1), "")
        .await;
    page["entries"][0]["leaf"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn publishing_answers_with_the_entry_and_a_head_that_includes_it_and_polls_carry_both() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        let key = server_key(&app).await;
        let body = json!({"title": "Second", "summary": "More.", "cvss_v3": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "affected": [{"product": "screenos", "ranges": [{"introduced": "6.3.0r1", "fixed": "6.3.0r21"}]}]});
        let published = support::patching::publish_advisory(&app, &f.vendor.token, body).await;
        let index = published["log"]["index"].as_u64().unwrap();
        let head = verified(&published["log"]["tree_head"], &key);
        assert!(head.tree_size > index);
        let text = entry_text(&app, index).await;
        assert!(text.contains("\"kind\":\"advisory.published\""), "{text}");
        assert!(
            text.contains(published["sha256"].as_str().unwrap()),
            "the entry holds the signed document's hash: {text}"
        );
        inclusion_holds(&app, index, &text, &head).await;

        let bytes = file_bytes(50_000);
        let body = json!({"product": "screenos", "version": "6.3.0r21", "platform": "ssg-500",
            "applies_to": [{"introduced": "6.3.0r12", "fixed": "6.3.0r21"}], "fixes": [f.advisory], "filename": "fix.bin"});
        let (_, created) = app.post("/api/v1/patches", &f.vendor.token, body).await;
        let id = created["id"].as_str().unwrap().to_owned();
        support::patching::upload_file(&app, &f.vendor.token, &id, bytes).await;
        let (status, patch) = app
            .post(&format!("/api/v1/patches/{id}/publish"), &f.vendor.token, json!({}))
            .await;
        assert_eq!(status, 201, "{patch}");
        assert_eq!(patch["state"], "published");
        let patch_index = patch["log"]["index"].as_u64().unwrap();
        let patch_head = verified(&patch["log"]["tree_head"], &key);
        assert!(patch_head.sequence > head.sequence);
        let text = entry_text(&app, patch_index).await;
        assert!(text.contains(patch["sha256"].as_str().unwrap()), "{text}");
        inclusion_holds(&app, patch_index, &text, &patch_head).await;

        // A device's poll carries the head, and the offer its entry and proof.
        let device = enrol(&app, &f, "fw1", "6.3.0r20").await;
        let token = device["token"].as_str().unwrap();
        let polled = poll(&app, token, json!({"version": "6.3.0r20"})).await;
        let poll_head = verified(&polled["log_head"], &key);
        let offer_log = &polled["update"]["log"];
        assert_eq!(offer_log["index"].as_u64(), Some(patch_index), "{polled}");
        assert_eq!(offer_log["tree_size"].as_u64(), Some(poll_head.tree_size));
        merkle::verify_inclusion(
            patch_index,
            poll_head.tree_size,
            &rfc::leaf(offer_log["leaf"].as_str().unwrap().as_bytes()),
            &hashes(offer_log),
            &poll_head.root_hash,
        )
        .unwrap();
        // The device says which size it holds: the answer brings the consistency proof.
        app.append_images(0, 2).await;
        log::sign_now(&app.state).await.unwrap();
        let again = poll(
            &app,
            token,
            json!({"version": "6.3.0r20", "log_size": poll_head.tree_size}),
        )
        .await;
        let newer = verified(&again["log_head"], &key);
        assert!(newer.tree_size > poll_head.tree_size);
        assert_eq!(
            again["log_consistency"]["from"].as_u64(),
            Some(poll_head.tree_size),
            "{again}"
        );
        merkle::verify_consistency(
            poll_head.tree_size,
            newer.tree_size,
            &poll_head.root_hash,
            &newer.root_hash,
            &hashes(&again["log_consistency"]),
        )
        .unwrap();

        // Yanking is logged too.
        let (status, yanked) = app
            .post(
                &format!("/api/v1/patches/{id}/yank"),
                &f.vendor.token,
                json!({"reason": "bricks ssg-500"}),
            )
            .await;
        assert_eq!(status, 200, "{yanked}");
        let text = entry_text(&app, yanked["log"]["index"].as_u64().unwrap()).await;
        assert!(
            text.contains("patch.yanked") && text.contains("bricks ssg-500"),
            "{text}"
        );
    }
}

#[actix_web::test]
async fn the_head_is_signed_again_when_it_is_due_even_if_nothing_changed() {
    for app in TestApp::each_with(&[("log_head_interval", "5m"), ("log_head_ttl", "1h")]).await {
        let key = server_key(&app).await;
        let (_, first) = app.get("/api/v1/log/head", "").await;
        let first = verified(&first, &key);
        assert!(first.expires_at - first.timestamp == chrono::TimeDelta::hours(1));
        assert_eq!(run_once(&app.state, Job::SignTreeHead).await.unwrap(), 0, "not due yet");
        // Five minutes pass.
        let statement = match app.backend {
            support::Backend::Postgres => "UPDATE log_heads SET signed_at = signed_at - INTERVAL '301 seconds'",
            support::Backend::Sqlite => "UPDATE log_heads SET signed_at = datetime(signed_at, '-301 seconds')",
        };
        app.db(move |conn| diesel::sql_query(statement).execute(conn).map_err(error_text))
            .await;
        assert_eq!(run_once(&app.state, Job::SignTreeHead).await.unwrap(), 1);
        run_once(&app.state, Job::SyncFleet).await.unwrap();
        let (_, second) = app.get("/api/v1/log/head", "").await;
        let second = verified(&second, &key);
        assert_eq!(second.sequence, first.sequence + 1);
        assert_eq!((second.tree_size, second.root_hash), (first.tree_size, first.root_hash));
        assert!(second.expires_at >= first.expires_at);
        // Both are kept, newest first, and page back by sequence. (The first one's
        // stored time was moved above, so it no longer matches what its signature
        // covers: a client refuses it, as it should.)
        let (status, kept) = app.get("/api/v1/log/heads", "").await;
        assert_eq!(status, 200, "{kept}");
        let sequences: Vec<u64> = kept
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["sequence"].as_u64().unwrap())
            .collect();
        assert_eq!(sequences[..2], [second.sequence, first.sequence]);
        assert_eq!(verified(&kept[0], &key), second);
        let (_, older) = app
            .get(&format!("/api/v1/log/heads?before={}&limit=1", second.sequence), "")
            .await;
        assert_eq!(older.as_array().unwrap().len(), 1);
        assert_eq!(older[0]["sequence"].as_u64(), Some(first.sequence));
        let moved: SignedHead = serde_json::from_value(older[0].clone()).unwrap();
        assert!(moved
            .verify(|_| Some(key.clone()))
            .unwrap_err()
            .contains("differ from what its signature covers"));
        assert_eq!(app.get("/api/v1/log/heads?limit=0", "").await.0, 422);
    }
}

#[actix_web::test]
async fn audit_finds_an_entry_rewritten_in_the_database_against_an_earlier_head() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        publish_patch(&app, &f, "6.3.0r21", file_bytes(10_000)).await;
        let dir = tempfile::tempdir().unwrap();
        let key = server_key(&app).await;
        let request = AuditRequest {
            server: app.base.parse().unwrap(),
            public_key: key.clone(),
            state_file: Some(dir.path().join("audit.json")),
            token: Some(f.vendor.token.clone()),
            witness_policy: None,
        };
        let report = audit::audit(&request).await.unwrap();
        assert!(report.ok(), "{:?}", report.problems);
        assert!(
            report.checked.iter().any(|c| c.contains("hash to the signed root")),
            "{:?}",
            report.checked
        );

        // The log grows (a patch, an advisory published and withdrawn): the next
        // audit sees it extend the head it kept, and every revision logged.
        publish_patch(&app, &f, "6.3.0r22", file_bytes(12_000)).await;
        let body = json!({"title": "Withdrawn later", "summary": "Not a flaw after all.",
            "cvss_v3": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N",
            "affected": [{"product": "screenos", "ranges": [{"introduced": "6.3.0r1", "fixed": "6.3.0r2"}]}]});
        let published = support::patching::publish_advisory(&app, &f.vendor.token, body).await;
        let (status, withdrawn) = app
            .post(
                &format!("/api/v1/advisories/{}/withdraw", published["id"].as_str().unwrap()),
                &f.vendor.token,
                json!({"reason": "not reproducible"}),
            )
            .await;
        assert_eq!(status, 201, "{withdrawn}");
        let report = audit::audit(&request).await.unwrap();
        assert!(report.ok(), "{:?}", report.problems);
        assert!(
            report.checked.iter().any(|c| c.contains("extends")),
            "{:?}",
            report.checked
        );
        let kept = std::fs::read_to_string(dir.path().join("audit.json")).unwrap();

        // Someone with database access rewrites what the advisory's entry says (and
        // its stored hash, to match).
        let changed = app
            .db(|conn| {
                let entry = rows::recent(
                    conn,
                    &rows::EntryFilter {
                        kind: Some("advisory.published".into()),
                        ..Default::default()
                    },
                    1,
                )?
                .remove(0);
                let forged = entry.leaf.replace("\"revision\":1", "\"revision\":2");
                assert_ne!(forged, entry.leaf);
                diesel::sql_query("UPDATE log_entries SET leaf = $1, leaf_hash = $2 WHERE idx = $3")
                    .bind::<diesel::sql_types::Text, _>(&forged)
                    .bind::<diesel::sql_types::Binary, _>(rfc::leaf(forged.as_bytes()).to_vec())
                    .bind::<diesel::sql_types::BigInt, _>(entry.idx)
                    .execute(conn)
                    .map_err(error_text)?;
                Ok(entry.idx)
            })
            .await;
        let report = audit::audit(&request).await.unwrap();
        assert!(!report.ok());
        assert!(report.has(audit::ProblemKind::Rewritten), "{:?}", report.problems);
        let problems: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        let problems = problems.join("\n");
        assert!(problems.contains("root signed in the head seen before"), "{problems}");
        assert!(
            problems.contains(&format!(
                "entry {changed} as served is not the entry the signed head includes"
            )),
            "{problems}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("audit.json")).unwrap(),
            kept,
            "a failed audit does not move the head it trusts"
        );
    }
}

/// An agent that polls `server` as the device `id` with `token`.
fn agent_config(server: &str, dir: &std::path::Path, id: &str, token: &str, key: &str, version: &str) -> AgentConfig {
    let identity = Identity::Token {
        id: Some(id.to_owned()),
        token: token.to_owned(),
    };
    screenos_agent(server, dir, identity, key, version)
}

/// A head signed with the server's key that says what the caller wants.
fn forged(app: &TestApp, head: TreeHead) -> Value {
    signed(&app.state.signer, &head)
}

#[actix_web::test]
async fn the_agent_refuses_older_expired_and_forked_heads_with_the_reason() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        publish_patch(&app, &f, "6.3.0r21", file_bytes(20_000)).await;
        let key = server_key(&app).await;
        let device = enrol(&app, &f, "fw1", "6.3.0r20").await;
        let (id, token) = (device["id"].as_str().unwrap(), device["token"].as_str().unwrap());
        let real_poll = |log_size: Option<u64>| {
            let body = match log_size {
                Some(size) => json!({"version": "6.3.0r20", "log_size": size}),
                None => json!({"version": "6.3.0r20"}),
            };
            poll(&app, token, body)
        };
        let mirror = Endpoint::start("127.0.0.1").await;
        mirror.script("/api/v1/device/report", vec![Reply::Json(201, "{}".into())]);
        let dir = tempfile::tempdir().unwrap();
        let settings = agent_config(&mirror.url(""), dir.path(), id, token, &key, "6.3.0r20");
        let mut agent = Agent::start(settings.clone()).await.unwrap();
        let answer = |agent_answer: &Value| vec![Reply::Json(200, agent_answer.to_string())];

        let first = real_poll(None).await;
        mirror.script("/api/v1/device/poll", answer(&first));
        let polled = agent.poll().await.unwrap();
        assert_eq!(polled.refused, None);
        assert!(polled.offer.is_some(), "the fix is offered");
        let held = agent.head().unwrap().clone();

        log::sign_now(&app.state).await.unwrap();
        let second = real_poll(Some(held.tree_size)).await;
        mirror.script("/api/v1/device/poll", answer(&second));
        assert_eq!(agent.poll().await.unwrap().refused, None);
        let held = agent.head().unwrap().clone();
        assert!(held.sequence > verified(&first["log_head"], &key).sequence);

        let refused = |polled: patchwarden::client::agent::Polled| {
            assert!(polled.offer.is_none(), "a refused answer offers nothing");
            polled.refused.expect("refused")
        };
        // An older answer, replayed.
        mirror.script("/api/v1/device/poll", answer(&first));
        let why = refused(agent.poll().await.unwrap());
        assert!(
            why.contains("rollback") && why.contains("older than the one already seen"),
            "{why}"
        );
        let reports = mirror.requests("/api/v1/device/report");
        let last: Value = serde_json::from_slice(&reports.last().unwrap().body).unwrap();
        assert_eq!(last["state"], "failed");
        assert!(last["message"].as_str().unwrap().contains("rollback"), "{last}");

        // An expired head: a frozen answer.
        let now = chrono::Utc::now();
        let mut stale = second.clone();
        stale["log_head"] = forged(
            &app,
            TreeHead {
                timestamp: now - chrono::TimeDelta::hours(2),
                expires_at: now - chrono::TimeDelta::hours(1),
                sequence: held.sequence + 1,
                ..held.clone()
            },
        );
        mirror.script("/api/v1/device/poll", answer(&stale));
        let why = refused(agent.poll().await.unwrap());
        assert!(why.contains("freeze") && why.contains("expired"), "{why}");

        // The same size with another root: a fork.
        let mut fork = second.clone();
        fork["log_head"] = forged(
            &app,
            TreeHead {
                root_hash: [9; 32],
                sequence: held.sequence + 2,
                timestamp: now,
                expires_at: now + chrono::TimeDelta::hours(1),
                ..held.clone()
            },
        );
        mirror.script("/api/v1/device/poll", answer(&fork));
        let why = refused(agent.poll().await.unwrap());
        assert!(why.contains("fork") && why.contains("another root hash"), "{why}");

        // A bigger tree that does not extend the one held: a fork.
        publish_patch(&app, &f, "6.3.0r22", file_bytes(30_000)).await;
        let grown = real_poll(Some(held.tree_size)).await;
        let grown_head = verified(&grown["log_head"], &key);
        assert!(grown["log_consistency"].is_object(), "{grown}");
        let mut fork = grown.clone();
        fork["log_head"] = forged(
            &app,
            TreeHead {
                root_hash: [7; 32],
                sequence: grown_head.sequence + 1,
                ..grown_head.clone()
            },
        );
        mirror.script("/api/v1/device/poll", answer(&fork));
        let why = refused(agent.poll().await.unwrap());
        assert!(why.contains("fork") && why.contains("does not extend"), "{why}");
        // Two different heads under one sequence number: a fork.
        let mut twin = grown.clone();
        twin["log_head"] = forged(
            &app,
            TreeHead {
                expires_at: grown_head.expires_at + chrono::TimeDelta::seconds(1),
                ..grown_head.clone()
            },
        );
        mirror.script("/api/v1/device/poll", answer(&grown));
        assert_eq!(agent.poll().await.unwrap().refused, None, "the genuine answer is taken");
        mirror.script("/api/v1/device/poll", answer(&twin));
        let why = refused(agent.poll().await.unwrap());
        assert!(why.contains("two different tree heads carry sequence"), "{why}");

        // The head held survives a restart: the old answer is still refused.
        drop(agent);
        let mut agent = Agent::start(settings).await.unwrap();
        assert_eq!(agent.head().map(|h| h.sequence), Some(grown_head.sequence));
        mirror.script("/api/v1/device/poll", answer(&second));
        let why = refused(agent.poll().await.unwrap());
        assert!(why.contains("rollback"), "{why}");

        // An offer whose entry is not the patch offered is not downloaded.
        let mut swapped = grown.clone();
        swapped["update"]["sha256"] = json!("0".repeat(64));
        mirror.script("/api/v1/device/poll", answer(&swapped));
        let offer = agent.poll().await.unwrap().offer.unwrap();
        let Outcome::Refused(why) = agent.apply(&offer).await.unwrap() else {
            panic!("an offer that is not the logged patch was acted on");
        };
        assert!(
            why.contains("not in the transparency log") && why.contains("sha256"),
            "{why}"
        );
    }
}

#[actix_web::test]
async fn a_downgrade_is_refused_unless_it_is_a_signed_rollback() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        let key = server_key(&app).await;
        publish_patch(&app, &f, "6.3.0r21", file_bytes(20_000)).await;
        // A device on 6.3.0r22 is handed the genuine r21 offer of an r20 device.
        let r20 = enrol(&app, &f, "old", "6.3.0r20").await;
        let offered = poll(&app, r20["token"].as_str().unwrap(), json!({"version": "6.3.0r20"})).await;
        let r22 = enrol(&app, &f, "new", "6.3.0r22").await;
        let mirror = Endpoint::start("127.0.0.1").await;
        mirror.script("/api/v1/device/report", vec![Reply::Json(201, "{}".into())]);
        mirror.script("/api/v1/device/poll", vec![Reply::Json(200, offered.to_string())]);
        let dir = tempfile::tempdir().unwrap();
        let mut agent = Agent::start(agent_config(
            &mirror.url(""),
            dir.path(),
            r22["id"].as_str().unwrap(),
            r22["token"].as_str().unwrap(),
            &key,
            "6.3.0r22",
        ))
        .await
        .unwrap();
        let offer = agent.poll().await.unwrap().offer.expect("the replayed offer");
        let Outcome::Refused(why) = agent.apply(&offer).await.unwrap() else {
            panic!("a downgrade was installed");
        };
        assert!(why.contains("goes back from 6.3.0r22 to the older 6.3.0r21"), "{why}");

        // The vendor signs a rollback to r20 for devices on r22: it is offered and installed.
        let bytes = file_bytes(25_000);
        let body = json!({"product": "screenos", "version": "6.3.0r20", "platform": "ssg-500", "rollback": true,
            "applies_to": [{"introduced": "6.3.0r22", "fixed": "6.3.0r23"}], "fixes": [], "filename": "back.bin"});
        let rollback = publish_draft(&app, &f, body, bytes).await;
        let (status, refused) = app
            .post(
                "/api/v1/patches",
                &f.vendor.token,
                json!({"product": "screenos", "version": "6.3.0r24", "rollback": true,
                "applies_to": [{"introduced": "6.3.0r22", "fixed": "6.3.0r23"}], "filename": "x.bin"}),
            )
            .await;
        assert_eq!(status, 422, "a rollback must go back: {refused}");
        let dir = tempfile::tempdir().unwrap();
        let settings = agent_config(
            &app.base,
            dir.path(),
            r22["id"].as_str().unwrap(),
            r22["token"].as_str().unwrap(),
            &key,
            "6.3.0r22",
        );
        let mut agent = Agent::start(settings).await.unwrap();
        let offer = agent.poll().await.unwrap().offer.expect("the rollback is offered");
        assert_eq!((offer.patch_id.as_str(), offer.rollback), (rollback.as_str(), true));
        let outcome = agent.apply(&offer).await.unwrap();
        assert!(
            matches!(&outcome, Outcome::Installed { running, .. } if running.version == "6.3.0r20"),
            "{outcome:?}"
        );
    }
}

/// Which part of `bytes` the byte at `at` belongs to: its number, or 0 for the
/// first line.
fn part_at(bytes: &[u8], at: usize) -> usize {
    let magic = patchwarden::domain::bundle::MAGIC.len();
    if at < magic {
        return 0;
    }
    let mut pos = magic;
    let mut number = 0;
    while pos < bytes.len() {
        number += 1;
        let header_end = pos + bytes[pos..].iter().position(|&b| b == b'\n').unwrap();
        let header = std::str::from_utf8(&bytes[pos..header_end]).unwrap();
        let length: usize = header.split(' ').nth(2).unwrap().parse().unwrap();
        let end = header_end + 1 + length + 1;
        if at < end {
            return number;
        }
        pos = end;
    }
    unreachable!("{at} is past the bundle")
}

#[actix_web::test]
async fn the_evidence_bundle_verifies_offline_and_every_flipped_byte_names_its_part() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        let key = server_key(&app).await;
        publish_patch(&app, &f, "6.3.0r21", file_bytes(20_000)).await;
        let mut tokens = HashMap::new();
        for (name, version) in [
            ("fw-fixed", "6.3.0r20"),
            ("fw-affected", "6.3.0r19"),
            ("<script>alert(1)</script>", "6.3.0r21"),
        ] {
            let device = enrol(&app, &f, name, version).await;
            tokens.insert(
                name,
                (
                    device["id"].as_str().unwrap().to_owned(),
                    device["token"].as_str().unwrap().to_owned(),
                ),
            );
        }
        // fw-fixed installs the fix and says so.
        let (id, token) = &tokens["fw-fixed"];
        let polled = poll(&app, token, json!({"version": "6.3.0r20"})).await;
        let patch = polled["update"]["patch_id"].as_str().unwrap();
        let (status, body) = app
            .post(
                "/api/v1/device/report",
                token,
                json!({"patch_id": patch, "state": "installed", "version": "6.3.0r21"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        poll(&app, token, json!({"version": "6.3.0r21"})).await;

        let response = evidence(&app, &f.advisory, &f.acme.admin.token).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("evidence.pwb"));
        let bytes = response.bytes().await.unwrap().to_vec();
        let report = audit::verify_bundle(&bytes, &key, None).unwrap();
        assert_eq!(report.manifest.advisory, f.advisory);
        assert_eq!(report.manifest.customer, "acme");
        assert_eq!(report.manifest.revisions, vec![1]);
        assert_eq!(report.manifest.patches.len(), 1);
        // The head as a C2SP note, and the patch's offline proof.
        let checkpoint = report
            .checkpoint
            .as_ref()
            .expect("the bundle carries its head as a note");
        assert_eq!(checkpoint.text, report.head.checkpoint());
        assert_eq!(report.proofs, 1);
        let exposure: HashMap<&str, (&str, Option<&str>, usize)> = report
            .devices
            .iter()
            .map(|d| {
                (
                    d.name.as_str(),
                    (d.exposure.as_str(), d.version.as_deref(), d.entries.len()),
                )
            })
            .collect();
        assert_eq!(exposure["fw-fixed"].0, "fixed", "{exposure:?}");
        assert_eq!(exposure["fw-fixed"].1, Some("6.3.0r21"));
        assert!(
            exposure["fw-fixed"].2 >= 2,
            "its install report and observation: {exposure:?}"
        );
        assert_eq!(exposure["fw-affected"].0, "affected", "{exposure:?}");
        assert_eq!(exposure.len(), 3);
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&tokens["fw-fixed"].1),
            "no device token in the bundle"
        );

        // The public log shows the customer's entries only as commitments.
        let (_, page) = app.get("/api/v1/log/entries?start=0", "").await;
        let public = page.to_string();
        assert!(
            !public.contains(id.as_str()) && !public.contains("fw-fixed") && !public.contains(&f.acme.id),
            "{public}"
        );
        assert!(public.contains("sealed"));

        // Every flipped byte is found, named by its part.
        let stride = if bytes.len() > 20_000 { 7 } else { 3 };
        let headers: Vec<usize> = bytes
            .iter()
            .enumerate()
            .filter(|(i, _)| bytes[..*i].ends_with(b"\npart ") || bytes[*i..].starts_with(b"part "))
            .flat_map(|(i, _)| i..i + 40)
            .filter(|i| *i < bytes.len())
            .collect();
        for at in (0..bytes.len()).step_by(stride).chain(headers) {
            let mut bad = bytes.clone();
            bad[at] ^= 0x20;
            let err = audit::verify_bundle(&bad, &key, None).expect_err(&format!("flipping byte {at} went unnoticed"));
            let part = part_at(&bytes, at);
            let named = if part == 0 {
                "first line".to_owned()
            } else {
                format!("part {part} ")
            };
            assert!(err.contains(&named), "byte {at} is in {named}: {err}");
        }

        // Another customer's bundle holds none of acme's devices; vendors get none.
        let (status, body) = app
            .get(&format!("/api/v1/advisories/{}/evidence", f.advisory), &f.vendor.token)
            .await;
        assert_eq!(status, 403, "{body}");
        let globex = app
            .client
            .get(app.url(&format!("/api/v1/advisories/{}/evidence", f.advisory)))
            .bearer_auth(&f.globex.admin.token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let report = audit::verify_bundle(&globex, &key, None).unwrap();
        assert!(
            report.devices.is_empty() && report.manifest.patches.is_empty(),
            "{:?}",
            report.devices
        );
        let (status, _) = app
            .get("/api/v1/advisories/PW-1999-0001/evidence", &f.acme.admin.token)
            .await;
        assert_eq!(status, 404);

        // The command line checks it offline with the public key alone.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vendor.pub"), &key).unwrap();
        std::fs::write(dir.path().join("bundle.pwb"), &bytes).unwrap();
        let mut bad = bytes.clone();
        bad[bytes.len() / 2] ^= 1;
        std::fs::write(dir.path().join("bad.pwb"), &bad).unwrap();
        let out = run(
            patchwarden(dir.path(), &[]).args(["audit", "--bundle", "bundle.pwb", "--pubkey", "vendor.pub"]),
            None,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stdout).contains("verifies"), "{}", text(&out.stdout));
        let out = run(
            patchwarden(dir.path(), &[]).args(["audit", "--bundle", "bad.pwb", "--pubkey", "vendor.pub"]),
            None,
        );
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains(&format!("part {}", part_at(&bytes, bytes.len() / 2))),
            "{}",
            text(&out.stderr)
        );

        // The operator's timeline: who did what, hostile text escaped; vendors only.
        let vendor = support::sign_in(&app, &f.vendor).await;
        let (status, html) = app.page(&vendor, "/vendor/log?kind=device.enrolled").await;
        assert_eq!(status, 200);
        assert!(html.contains("device.enrolled") && html.contains("acme"), "{html}");
        assert!(
            !html.contains("<script>alert(1)</script>") && html.contains("&lt;script&gt;"),
            "escaped"
        );
        assert!(!html.contains("patch.published</td>"), "filtered by kind");
        let (status, html) = app
            .page(&vendor, &format!("/vendor/log?actor=user:{}", f.vendor.user_id))
            .await;
        assert_eq!(status, 200);
        assert!(
            html.contains("advisory.published") && html.contains(&f.vendor.email),
            "{html}"
        );
        let customer = support::sign_in(&app, &f.acme.admin).await;
        let (status, _) = app.page(&customer, "/vendor/log").await;
        assert_eq!(status, 403);
    }
}

/// Every release image row has exactly one log entry, integrated or still
/// pending, and every entry its row; the log's count, indexes and stored subtrees
/// agree with its integrated entries. Returns how many entries are pending.
///
/// Read in one snapshot: a running sequencer moves entries from pending to
/// integrated between two separate reads.
fn check_atomic(conn: &mut patchwarden::db::DbConnection) -> usize {
    in_snapshot(conn, check_atomic_in_snapshot)
}

/// `check` run on what one snapshot of the database holds.
fn in_snapshot<T>(
    conn: &mut patchwarden::db::DbConnection,
    check: impl FnOnce(&mut patchwarden::db::DbConnection) -> T,
) -> T {
    use diesel::connection::SimpleConnection;
    let begin = match conn {
        patchwarden::db::DbConnection::Postgres(_) => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        patchwarden::db::DbConnection::Sqlite(_) => "BEGIN",
    };
    conn.batch_execute(begin).unwrap();
    let out = check(conn);
    conn.batch_execute("COMMIT").unwrap();
    out
}

fn check_atomic_in_snapshot(conn: &mut patchwarden::db::DbConnection) -> usize {
    use diesel::prelude::*;
    use patchwarden::db::schema::{log_entries, log_pending, release_images};
    let images: Vec<String> = release_images::table
        .select(release_images::image_sha256)
        .load(conn)
        .unwrap();
    let mut logged: Vec<String> = log_entries::table
        .filter(log_entries::kind.eq("image.registered"))
        .select(log_entries::subject)
        .load(conn)
        .unwrap();
    let pending: Vec<String> = log_pending::table
        .filter(log_pending::kind.eq("image.registered"))
        .select(log_pending::subject)
        .load(conn)
        .unwrap();
    let waiting = pending.len();
    logged.extend(pending);
    let mut images: Vec<String> = images.into_iter().map(|s| format!("image/screenos/{s}")).collect();
    images.sort();
    logged.sort();
    assert_eq!(
        images, logged,
        "an image row without its entry, an entry without its row, or an entry twice"
    );
    check_tree(conn);
    waiting
}

/// The log's count, indexes and stored subtrees agree with its integrated entries.
fn check_tree(conn: &mut patchwarden::db::DbConnection) {
    let size = rows::size(conn).unwrap();
    let entries = rows::entries(conn, 0, size + 10).unwrap();
    assert_eq!(entries.len() as u64, size, "the count and the entries agree");
    let mut frontier = Frontier::default();
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry.idx as usize, i, "no gap");
        frontier.push(rfc::leaf(entry.leaf.as_bytes()));
    }
    assert_eq!(
        rows::root(conn, size).unwrap(),
        frontier.root(),
        "the stored subtrees match the entries"
    );
}

/// The server binary on a backend of its own, run as a process that can be killed:
/// its directory, database, address and settings.
struct Process {
    dir: tempfile::TempDir,
    database_url: String,
    base: String,
    env: Vec<(String, String)>,
    _pg: Option<support::PgDatabase>,
}

impl Process {
    fn new(backend: support::Backend, settings: &[(&str, &str)]) -> Process {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, pg) = database_for(backend, &dir);
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut env = vec![
            ("PATCHWARDEN_DATABASE_URL".to_owned(), database_url.clone()),
            ("PATCHWARDEN_BIND".to_owned(), format!("127.0.0.1:{port}")),
        ];
        env.extend(settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Process {
            dir,
            database_url,
            base: format!("http://127.0.0.1:{port}"),
            env,
            _pg: pg,
        }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    /// A vendor admin's API token, made from the shell.
    fn vendor(&self) -> String {
        bootstrap_vendor(
            self.dir.path(),
            &self.env(),
            "ops@vendor.example",
            "a long and good password",
        )
    }

    /// Customer acme's admin's API token, made from the shell.
    fn customer_admin(&self) -> String {
        bootstrap_customer_admin(
            self.dir.path(),
            &self.env(),
            "acme",
            "admin@acme.example",
            "another long and good password",
        )
    }

    /// Starts `patchwarden serve` and waits until it answers.
    async fn start(&self, client: &reqwest::Client) -> Server {
        let mut server = Server(
            patchwarden(self.dir.path(), &self.env())
                .arg("serve")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_healthy(client, &self.base, &mut server).await;
        server
    }
}

/// Eight writers send what `request(writer, n)` makes, one after another, as fast
/// as the server answers, keeping the name of each acknowledged one; the server is
/// killed with SIGKILL once `burst` were acknowledged, with writes in flight.
/// Returns the names acknowledged.
async fn burst_then_kill(
    server: &mut Server,
    burst: usize,
    what: &str,
    request: impl Fn(usize, u64) -> (reqwest::RequestBuilder, String) + Clone + 'static,
) -> Vec<String> {
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (request, acknowledged) = (request.clone(), acknowledged.clone());
            actix_web::rt::spawn(async move {
                for n in 0.. {
                    let (sent, name) = request(w, n);
                    match sent.send().await {
                        Ok(r) if r.status().is_success() => acknowledged.lock().unwrap().push(name),
                        _ => return,
                    }
                }
            })
        })
        .collect();
    support::until(what, Duration::from_secs(240), || {
        acknowledged.lock().unwrap().len() >= burst
    })
    .await;
    server.0.kill().unwrap(); // SIGKILL
    server.0.wait().unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    acknowledged
}

/// Image registrations acknowledged before the server was killed.
const BURST: usize = 10_000;

#[actix_web::test]
async fn kill_9_while_events_are_logged_leaves_each_with_its_entry_or_neither() {
    for backend in backends() {
        on_backend(backend);
        let process = Process::new(backend, &[]);
        let (base, client) = (process.base.clone(), reqwest::Client::new());
        let token = process.vendor();
        let mut server = process.start(&client).await;
        let product = json!({"slug": "screenos", "name": "ScreenOS", "version_scheme": "vendor"});
        let response = client
            .post(format!("{base}/api/v1/products"))
            .bearer_auth(&token)
            .json(&product)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);

        // Eight writers register images as fast as they can; the server is killed
        // once a burst of them was acknowledged, with writes in flight and entries
        // waiting for the sequencer.
        let acknowledged = burst_then_kill(&mut server, BURST, "a burst of images registered", {
            let (client, base, token) = (client.clone(), base.clone(), token.clone());
            move |w, i| {
                let sha = format!("{w:02x}{i:062x}");
                let body = json!({"version": "6.3.0r21", "image_sha256": sha});
                let request = client
                    .post(format!("{base}/api/v1/products/screenos/images"))
                    .bearer_auth(&token)
                    .json(&body);
                (request, sha)
            }
        })
        .await;
        let url = patchwarden::db::DatabaseUrl::parse(&process.database_url).unwrap();
        let mut conn = patchwarden::db::establish(&url).unwrap();
        check_atomic(&mut conn);

        // The restarted server's sequencer integrates what was pending; every
        // acknowledged registration has exactly one entry, and an outside audit agrees.
        let server = process.start(&client).await;
        support::until("the pending entries integrated", Duration::from_secs(60), || {
            check_atomic(&mut conn) == 0
        })
        .await;
        {
            use diesel::prelude::*;
            use patchwarden::db::schema::log_entries;
            let subjects: Vec<String> = log_entries::table
                .filter(log_entries::kind.eq("image.registered"))
                .select(log_entries::subject)
                .load(&mut conn)
                .unwrap();
            let mut counts: HashMap<String, usize> = HashMap::new();
            for subject in subjects {
                *counts.entry(subject).or_default() += 1;
            }
            assert!(acknowledged.len() >= BURST);
            for sha in acknowledged.iter() {
                assert_eq!(counts.get(&format!("image/screenos/{sha}")), Some(&1), "image {sha}");
            }
        }
        let body = json!({"version": "6.3.0r22", "image_sha256": "f".repeat(64)});
        let response = client
            .post(format!("{base}/api/v1/products/screenos/images"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        check_atomic(&mut conn);
        outside_audit_passes(&client, &base).await;
        drop(server);
    }
}

/// `patchwarden audit`'s check of the log at `base`, as an outsider runs it, passes.
async fn outside_audit_passes(client: &reqwest::Client, base: &str) {
    let key = client
        .get(format!("{base}/api/v1/keys"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()[0]["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let report = audit::audit(&AuditRequest {
        server: base.parse().unwrap(),
        public_key: key,
        state_file: None,
        token: None,
        witness_policy: None,
    })
    .await
    .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

/// Every ended install report (failed, installed, rolled back) has exactly one
/// `install.reported` entry of its device, integrated or pending, and every such
/// entry its report; the tree agrees with its entries. Returns how many entries
/// are pending, and how many there are in all. A device's reports all carry
/// distinct messages here, so each is a report of its own.
fn check_reports_in_snapshot(conn: &mut patchwarden::db::DbConnection) -> (usize, usize) {
    use diesel::prelude::*;
    use patchwarden::db::schema::{install_reports, log_entries, log_pending};
    let ended: Vec<String> = install_reports::table
        .filter(install_reports::state.eq_any(["failed", "installed", "rolled_back"]))
        .select(install_reports::device_id)
        .load(conn)
        .unwrap();
    let logged: Vec<String> = log_entries::table
        .filter(log_entries::kind.eq("install.reported"))
        .select(log_entries::subject)
        .load(conn)
        .unwrap();
    let pending: Vec<String> = log_pending::table
        .filter(log_pending::kind.eq("install.reported"))
        .select(log_pending::subject)
        .load(conn)
        .unwrap();
    let waiting = pending.len();
    let all = logged.len() + waiting;
    let mut reports: HashMap<String, usize> = HashMap::new();
    for device in ended {
        *reports.entry(format!("device/{device}")).or_default() += 1;
    }
    let mut entries: HashMap<String, usize> = HashMap::new();
    for subject in logged.into_iter().chain(pending) {
        *entries.entry(subject).or_default() += 1;
    }
    assert_eq!(
        reports, entries,
        "a report without its entry, an entry without its report, or an entry twice (by device)"
    );
    check_tree(conn);
    (waiting, all)
}

/// Reports acknowledged before the server was killed.
const REPORTS: usize = 10_000;

#[actix_web::test]
async fn kill_9_during_a_burst_of_install_reports_leaves_each_with_its_entry_or_neither() {
    for backend in backends() {
        on_backend(backend);
        // The burst comes from a few devices, each far past a real device's rate.
        let process = Process::new(backend, &[("PATCHWARDEN_DEVICE_REQUESTS_PER_MINUTE", "1000000")]);
        let (base, client) = (process.base.clone(), reqwest::Client::new());
        let vendor = process.vendor();
        let admin = process.customer_admin();
        let mut server = process.start(&client).await;
        let send = |method: reqwest::Method, path: &str, token: &str, body: Value| {
            let mut request = client.request(method, format!("{base}{path}")).json(&body);
            if !token.is_empty() {
                request = request.bearer_auth(token);
            }
            async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        let post = reqwest::Method::POST;
        let product = json!({"slug": "screenos", "name": "ScreenOS", "version_scheme": "vendor"});
        assert_eq!(send(post.clone(), "/api/v1/products", &vendor, product).await.0, 201);
        let entitled = json!({"products": ["screenos"]});
        let (status, body) = send(
            reqwest::Method::PUT,
            "/api/v1/customers/acme/entitlements",
            &vendor,
            entitled,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let advisory = json!({
            "title": "Unauthorized code in ScreenOS", "summary": "Backdoor.",
            "cvss_v3": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "emergency": true,
            "affected": [{"product": "screenos", "ranges": [{"introduced": "6.3.0r12", "fixed": "6.3.0r21"}]}]
        });
        let (status, draft) = send(post.clone(), "/api/v1/advisories", &vendor, advisory).await;
        assert_eq!(status, 201, "{draft}");
        let advisory = draft["id"].as_str().unwrap().to_owned();
        let path = format!("/api/v1/advisories/{advisory}/publish");
        let (status, body) = send(post.clone(), &path, &vendor, json!({})).await;
        assert_eq!(status, 201, "{body}");
        let patch = json!({
            "product": "screenos", "version": "6.3.0r21", "platform": "ssg-500",
            "applies_to": [{"introduced": "6.3.0r12", "fixed": "6.3.0r21"}],
            "fixes": [advisory], "filename": "screenos-6.3.0r21.bin"
        });
        let (status, draft) = send(post.clone(), "/api/v1/patches", &vendor, patch).await;
        assert_eq!(status, 201, "{draft}");
        let patch = draft["id"].as_str().unwrap().to_owned();
        let uploaded = client
            .put(format!("{base}/api/v1/patches/{patch}/file"))
            .bearer_auth(&vendor)
            .header("content-type", "application/octet-stream")
            .body(file_bytes(10_000))
            .send()
            .await
            .unwrap();
        assert_eq!(uploaded.status(), 200);
        let path = format!("/api/v1/patches/{patch}/publish");
        let (status, body) = send(post.clone(), &path, &vendor, json!({})).await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = send(
            post.clone(),
            "/api/v1/enrollment-tokens",
            &admin,
            json!({"max_uses": 8}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let enrolment = body["token"].as_str().unwrap().to_owned();

        // Eight devices are offered the fix; each reports failed installs with
        // messages of its own as fast as it can, and the server is killed once a
        // burst of them was acknowledged, with reports in the writer's batches and
        // entries waiting for the sequencer.
        let mut devices = Vec::new();
        for d in 0..8 {
            let body = json!({
                "enrollment_token": enrolment, "name": format!("fw-{d}"), "product": "screenos",
                "platform": "ssg-500", "version": "6.3.0r20"
            });
            let (status, enrolled) = send(post.clone(), "/api/v1/device/enroll", "", body).await;
            assert_eq!(status, 201, "{enrolled}");
            let token = enrolled["token"].as_str().unwrap().to_owned();
            let (status, answer) = send(
                post.clone(),
                "/api/v1/device/poll",
                &token,
                json!({"version": "6.3.0r20"}),
            )
            .await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["update"]["patch_id"].as_str(), Some(patch.as_str()), "{answer}");
            devices.push(token);
        }
        let acknowledged = burst_then_kill(&mut server, REPORTS, "a burst of reports acknowledged", {
            let (client, base, patch) = (client.clone(), base.clone(), patch.clone());
            move |d, i| {
                let message = format!("attempt {d}-{i}: flash write failed");
                let body = json!({"patch_id": patch, "state": "failed", "message": message});
                let request = client
                    .post(format!("{base}/api/v1/device/report"))
                    .bearer_auth(&devices[d])
                    .json(&body);
                (request, message)
            }
        })
        .await;
        let url = patchwarden::db::DatabaseUrl::parse(&process.database_url).unwrap();
        let mut conn = patchwarden::db::establish(&url).unwrap();
        in_snapshot(&mut conn, check_reports_in_snapshot);

        // The restarted server's sequencer integrates what was pending; every
        // acknowledged report is stored once, with its entry, and an outside audit agrees.
        let server = process.start(&client).await;
        support::until("the pending entries integrated", Duration::from_secs(60), || {
            in_snapshot(&mut conn, check_reports_in_snapshot).0 == 0
        })
        .await;
        let (_, entries) = in_snapshot(&mut conn, check_reports_in_snapshot);
        {
            use diesel::prelude::*;
            use patchwarden::db::schema::install_reports;
            let messages: Vec<Option<String>> = install_reports::table
                .select(install_reports::message)
                .load(&mut conn)
                .unwrap();
            let mut counts: HashMap<String, usize> = HashMap::new();
            for message in messages.into_iter().flatten() {
                *counts.entry(message).or_default() += 1;
            }
            assert!(acknowledged.len() >= REPORTS);
            assert!(entries >= acknowledged.len(), "{entries} entries");
            for message in acknowledged.iter() {
                assert_eq!(counts.get(message), Some(&1), "report {message}");
            }
        }
        outside_audit_passes(&client, &base).await;
        drop(server);
    }
}

#[actix_web::test]
async fn a_server_upgraded_to_the_log_logs_what_it_published_before_and_still_offers_it() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        publish_patch(&app, &f, "6.3.0r21", file_bytes(10_000)).await;
        let image = json!({"version": "6.3.0r21", "image_sha256": "a".repeat(64)});
        assert_eq!(
            app.post("/api/v1/products/screenos/images", &f.vendor.token, image)
                .await
                .0,
            201
        );
        // The database as it was before the log.
        app.db(|conn| {
            for statement in [
                "DELETE FROM log_heads",
                "DELETE FROM log_nodes",
                "DELETE FROM log_entries",
                "DELETE FROM log_pending",
                "UPDATE log_state SET size = 0",
            ] {
                diesel::sql_query(statement).execute(conn).map_err(error_text)?;
            }
            Ok(())
        })
        .await;
        let app = app.restart().await;
        let (_, head) = app.get("/api/v1/log/head", "").await;
        assert_eq!(head["sequence"].as_u64(), Some(1), "{head}");
        let (_, page) = app.get("/api/v1/log/entries?start=0", "").await;
        let kinds: Vec<String> = page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                serde_json::from_str::<Value>(e["leaf"].as_str().unwrap()).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(kinds[0], "key.introduced", "keys first: {kinds:?}");
        for kind in ["advisory.published", "patch.published", "image.registered"] {
            assert!(kinds.iter().any(|k| k == kind), "{kind} missing: {kinds:?}");
        }
        let report = audit::audit(&AuditRequest {
            server: app.base.parse().unwrap(),
            public_key: server_key(&app).await,
            state_file: None,
            token: Some(f.vendor.token.clone()),
            witness_policy: None,
        })
        .await
        .unwrap();
        assert!(report.ok(), "{:?}", report.problems);
        let device = enrol(&app, &f, "fw1", "6.3.0r20").await;
        let polled = poll(&app, device["token"].as_str().unwrap(), json!({"version": "6.3.0r20"})).await;
        assert!(
            polled["update"]["log"]["index"].is_u64(),
            "the fix is offered with its entry: {polled}"
        );
    }
}

/// The evidence bundle of `advisory` as `token` downloads it.
async fn evidence(app: &TestApp, advisory: &str, token: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/api/v1/advisories/{advisory}/evidence")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// The sequence number of the newest signed head.
async fn head_sequence(app: &TestApp) -> Option<i64> {
    app.db(|conn| Ok(rows::latest_head(conn)?.map(|h| h.sequence))).await
}

#[actix_web::test]
async fn evidence_downloads_reuse_the_newest_head_while_it_covers_the_log() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        publish_patch(&app, &f, "6.3.0r21", file_bytes(1_000)).await;
        let download = || async {
            let response = evidence(&app, &f.advisory, &f.acme.admin.token).await;
            assert_eq!(response.status(), 200, "[{backend}]");
        };
        download().await;
        let first = head_sequence(&app).await;
        assert!(first.is_some(), "[{backend}] the bundle is over a signed head");
        for _ in 0..5 {
            download().await;
        }
        assert_eq!(
            head_sequence(&app).await,
            first,
            "[{backend}] downloads of an unchanged log signed new heads"
        );
        // Once the log grows, the next bundle is over a head that covers it.
        enrol(&app, &f, "fw-new", "6.3.0r20").await;
        download().await;
        let grown = head_sequence(&app).await;
        assert!(
            grown > first,
            "[{backend}] the grown log got no covering head: {grown:?} after {first:?}"
        );
    }
}

#[actix_web::test]
async fn evidence_bundles_are_limited_per_customer() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let download = |token: String| {
            let (app, advisory) = (&app, f.advisory.clone());
            async move { evidence(app, &advisory, &token).await }
        };
        let mut statuses = Vec::new();
        for _ in 0..20 {
            statuses.push(download(f.acme.admin.token.clone()).await.status().as_u16());
        }
        assert!(statuses.iter().all(|s| *s == 200), "[{backend}] {statuses:?}");
        let refused = download(f.acme.admin.token.clone()).await;
        assert_eq!(refused.status(), 429, "[{backend}] past twenty a minute");
        assert!(refused.headers().contains_key("retry-after"), "[{backend}]");
        // Another customer has a budget of its own.
        let other = download(f.globex.admin.token.clone()).await.status().as_u16();
        assert_ne!(
            other, 429,
            "[{backend}] one customer's downloads spent another's budget"
        );
    }
}
