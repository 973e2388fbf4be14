//! Conformance with the C2SP texts, checked by implementations written apart from
//! ours: the `signed_note` crate reads and verifies the checkpoints the server
//! serves; cosignatures are checked with `ed25519-dalek` over the message the
//! `tlog-cosignature` text defines, composed here; and our note code verifies and
//! reproduces the example of the signed-note text (the Go `sumdb/note` vector).
//! A patch's `tlog-proof` is read line by line as that text defines it, its
//! checkpoint verified by `signed_note` and its inclusion proof walked as RFC 9162
//! words it. The tree served as `tlog-tiles` hashes, by RFC 9162's own recursion,
//! to the checkpoint's root, and its entry bundles to its leaves. The served
//! checkpoints, proofs and tiles on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::Engine;
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use patchwarden::domain::note::{Note, NoteSigner, VerifierKey, TYPE_COSIGNATURE_V1, TYPE_ED25519};
use patchwarden::services::log;
use sha2::{Digest, Sha256};
use signed_note::{StandardVerifier, VerifierList};
use support::TestApp;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The example of c2sp.org/signed-note (as in Go's `sumdb/note`): its verifier
/// key, its signer's seed, and the note.
const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const TEXT: &str =
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const SIGNED: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

#[test]
fn the_spec_example_verifies_and_signing_it_again_gives_the_same_bytes() {
    let key = VerifierKey::parse(VKEY).unwrap();
    assert_eq!(hex::encode(key.id), "c74f20a3");
    assert_eq!(key.to_string(), VKEY);
    let note = Note::parse(SIGNED).unwrap();
    assert_eq!(note.text, TEXT);
    assert_eq!(note.verified_by(&key), Some(None));
    assert_eq!(note.to_text(), SIGNED);
    // Ed25519 is deterministic: the seed of the example's private key signs the
    // same bytes.
    let private = B64
        .decode(SKEY.strip_prefix("PRIVATE+KEY+PeterNeumann+c74f20a3+").unwrap())
        .unwrap();
    assert_eq!(private[0], TYPE_ED25519);
    let seed: [u8; 32] = private[1..].try_into().unwrap();
    let signer = NoteSigner::from_seed("PeterNeumann", TYPE_ED25519, &seed).unwrap();
    assert_eq!(signer.verifier().to_string(), VKEY);
    let again = Note {
        text: TEXT.into(),
        signatures: vec![signer.sign(TEXT)],
    };
    assert_eq!(again.to_text(), SIGNED);
    // A changed word is refused.
    let changed = Note::parse(&SIGNED.replace("answer", "ANSWER")).unwrap();
    assert_eq!(changed.verified_by(&key), None);
}

#[test]
fn cosignatures_verify_as_the_tlog_cosignature_text_defines_them() {
    let witness = NoteSigner::from_seed("witness.example/w1", TYPE_COSIGNATURE_V1, &[5; 32]).unwrap();
    let body = "example.com/log\n12\nOGmB4g8lyL3aTxQqDdtKxZmxmfJzFuIBKqqmCpA1fZU=\n";
    let line = witness.cosign(body, 1_733_500_000).line();
    // `— <name> <base64>`: key id, 8-byte big-endian time, Ed25519 signature.
    let encoded = line.trim_end().strip_prefix("\u{2014} witness.example/w1 ").unwrap();
    let bytes = B64.decode(encoded).unwrap();
    assert_eq!(bytes.len(), 4 + 8 + 64);
    let public = witness.verifier().public;
    let mut id = Sha256::new();
    id.update(b"witness.example/w1\n");
    id.update([0x04]);
    id.update(public);
    assert_eq!(bytes[..4], id.finalize()[..4], "key id over name, newline, 0x04, key");
    let time = u64::from_be_bytes(bytes[4..12].try_into().unwrap());
    assert_eq!(time, 1_733_500_000);
    let message = format!("cosignature/v1\ntime {time}\n{body}");
    let key = VerifyingKey::from_bytes(&public).unwrap();
    let signature = Signature::from_slice(&bytes[12..]).unwrap();
    key.verify(message.as_bytes(), &signature).unwrap();
    assert!(key
        .verify(
            format!("cosignature/v1\ntime {}\n{body}", time + 1).as_bytes(),
            &signature
        )
        .is_err());
    // The verifier key of a cosigner carries its type byte.
    let vkey = witness.verifier().to_string();
    let key_part = vkey.splitn(3, '+').nth(2).unwrap();
    assert_eq!(B64.decode(key_part).unwrap()[0], 0x04);
}

#[actix_web::test]
async fn served_checkpoints_are_signed_notes_an_independent_verifier_accepts() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        log::sign_now(&app.state).await.unwrap();
        let response = reqwest::get(app.url("/api/v1/log/checkpoint")).await.unwrap();
        assert_eq!(response.status(), 200, "[{backend}]");
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; charset=utf-8",
            "[{backend}]"
        );
        let checkpoint = response.text().await.unwrap();
        let (_, head) = app.get("/api/v1/log/head", "").await;
        assert_eq!(
            head["checkpoint"].as_str(),
            Some(checkpoint.as_str()),
            "[{backend}] {head}"
        );
        let vkey = head["note_verifier_key"].as_str().unwrap();

        // signed_note reads the key and the note, and the log's signature verifies.
        let verifier = StandardVerifier::new(vkey).unwrap();
        let note = signed_note::Note::from_bytes(checkpoint.as_bytes()).unwrap();
        let (verified, _) = note
            .verify(&VerifierList::new(vec![Box::new(verifier.clone())]))
            .unwrap();
        assert_eq!(verified.len(), 1, "[{backend}]");
        // The body is a tlog-checkpoint of the head: origin, size, base64 root.
        let text = std::str::from_utf8(note.text()).unwrap();
        let root = B64.encode(hex::decode(head["root_hash"].as_str().unwrap()).unwrap());
        assert_eq!(
            text,
            format!("{}\n{}\n{root}\n", head["origin"].as_str().unwrap(), head["tree_size"]),
            "[{backend}]"
        );
        // The note key is the vendor's minisign key: the same Ed25519 public key,
        // read here from the minisign `.pub` layout (algorithm, key number, key).
        let (_, keys) = app.get("/api/v1/keys", "").await;
        let minisign = keys[0]["public_key"].as_str().unwrap();
        let raw = B64.decode(minisign.lines().nth(1).unwrap()).unwrap();
        let key_part = vkey.splitn(3, '+').nth(2).unwrap();
        assert_eq!(B64.decode(key_part).unwrap()[1..], raw[10..42], "[{backend}]");

        // A changed byte of the body fails.
        let forged = checkpoint.replacen(&format!("\n{}\n", head["tree_size"]), "\n999999\n", 1);
        let forged = signed_note::Note::from_bytes(forged.as_bytes()).unwrap();
        assert!(forged.verify(&VerifierList::new(vec![Box::new(verifier)])).is_err());
    }
}

/// The root an RFC 9162 §2.1.3.2 inclusion proof leads to, as the RFC words it.
fn root_from_inclusion(index: u64, size: u64, leaf: &[u8], proof: &[Vec<u8>]) -> Option<Vec<u8>> {
    let node = |left: &[u8], right: &[u8]| {
        let mut h = Sha256::new();
        h.update([1u8]);
        h.update(left);
        h.update(right);
        h.finalize().to_vec()
    };
    let (mut f, mut s) = (index, size.checked_sub(1)?);
    let mut r = Sha256::new().chain_update([0u8]).chain_update(leaf).finalize().to_vec();
    for p in proof {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            r = node(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(r)
}

#[actix_web::test]
async fn a_patch_proof_reads_as_the_tlog_proof_text_defines_it_and_its_parts_verify_apart_from_ours() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        let f = support::patching::fixture(&app).await;
        let bytes = support::patching::file_bytes(2048);
        let id = support::patching::publish_patch(&app, &f, "6.3.0r21", bytes.clone()).await;
        let (status, proof) = app
            .get_bytes(&format!("/api/v1/patches/{id}/proof"), &f.acme.admin.token)
            .await;
        assert_eq!(status, 200, "[{backend}]");
        let proof = String::from_utf8(proof).unwrap();

        // c2sp.org/tlog-proof: the header, `extra`, `index` with no leading zero, the
        // hashes one per line, a blank line, and the checkpoint verbatim.
        let (lines, checkpoint) = proof.split_once("\n\n").unwrap();
        let mut lines = lines.split('\n');
        assert_eq!(lines.next(), Some("c2sp.org/tlog-proof@v1"), "[{backend}] {proof}");
        let extra = B64
            .decode(lines.next().unwrap().strip_prefix("extra ").unwrap())
            .unwrap();
        let index = lines.next().unwrap().strip_prefix("index ").unwrap();
        assert!(index == "0" || !index.starts_with('0'), "[{backend}] {index}");
        let index: u64 = index.parse().unwrap();
        let hashes: Vec<Vec<u8>> = lines.map(|l| B64.decode(l).unwrap()).collect();
        assert!(hashes.iter().all(|h| h.len() == 32), "[{backend}]");

        // The checkpoint verifies with signed_note under the published note key.
        let (_, head) = app.get("/api/v1/log/head", "").await;
        let verifier = StandardVerifier::new(head["note_verifier_key"].as_str().unwrap()).unwrap();
        let note = signed_note::Note::from_bytes(checkpoint.as_bytes()).unwrap();
        note.verify(&VerifierList::new(vec![Box::new(verifier)])).unwrap();
        let body = std::str::from_utf8(note.text()).unwrap();
        let mut body_lines = body.lines();
        assert_eq!(body_lines.next(), head["origin"].as_str(), "[{backend}]");
        let size: u64 = body_lines.next().unwrap().parse().unwrap();
        let root = B64.decode(body_lines.next().unwrap()).unwrap();

        // The entry in the extra data is the patch's publication, and the proof
        // leads from it to the checkpoint's root.
        let extra: serde_json::Value = serde_json::from_slice(&extra).unwrap();
        let entry_text = extra["entry"].as_str().unwrap();
        let entry: serde_json::Value = serde_json::from_str(entry_text).unwrap();
        assert_eq!(entry["subject"], format!("patch/{id}"), "[{backend}] {entry}");
        assert_eq!(entry["sha256"], hex::encode(Sha256::digest(&bytes)), "[{backend}]");
        assert_eq!(
            root_from_inclusion(index, size, entry_text.as_bytes(), &hashes),
            Some(root.clone()),
            "[{backend}]"
        );
        assert_ne!(
            root_from_inclusion(index ^ 1, size, entry_text.as_bytes(), &hashes),
            Some(root),
            "[{backend}] another index does not lead to the root"
        );
        // The same head's minisign signature is carried for devices that check what
        // the head says of yanked patches.
        assert!(
            extra["head_signature"]
                .as_str()
                .unwrap()
                .contains("trusted comment: patchwarden-log-head"),
            "[{backend}] {extra}"
        );
    }
}

/// MTH(D[n]) of RFC 9162 §2.1.1 over leaf hashes, as the RFC words it.
fn mth(leaves: &[Vec<u8>]) -> Vec<u8> {
    match leaves.len() {
        0 => Sha256::digest([]).to_vec(),
        1 => leaves[0].clone(),
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            let mut h = Sha256::new();
            h.update([1u8]);
            h.update(mth(&leaves[..k]));
            h.update(mth(&leaves[k..]));
            h.finalize().to_vec()
        }
    }
}

#[actix_web::test]
async fn the_tree_as_tiles_hashes_to_the_checkpoint_as_the_tlog_tiles_text_defines_it() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        app.append_images(0, 300).await;
        log::sign_now(&app.state).await.unwrap();
        let (_, checkpoint) = app.get_text("/api/v1/log/checkpoint").await;
        let mut body = checkpoint.lines().skip(1);
        let size: usize = body.next().unwrap().parse().unwrap();
        let root = B64.decode(body.next().unwrap()).unwrap();
        assert!(size > 256 && size < 512, "[{backend}] {size}");
        let get = |path: String| {
            let url = app.url(&format!("/api/v1/log/{path}"));
            async move {
                let response = reqwest::get(url).await.unwrap();
                let status = response.status().as_u16();
                let cache = response
                    .headers()
                    .get("cache-control")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                (status, cache, response.bytes().await.unwrap().to_vec())
            }
        };

        // Level 0: one full tile of 256 leaf hashes, and the rest as a partial one.
        let (status, cache, full) = get("tile/0/000".into()).await;
        assert_eq!((status, full.len()), (200, 256 * 32), "[{backend}]");
        assert!(cache.contains("immutable"), "[{backend}] {cache}");
        let rest = size - 256;
        let (status, _, partial) = get(format!("tile/0/001.p/{rest}")).await;
        assert_eq!((status, partial.len()), (200, rest * 32), "[{backend}]");
        let leaves: Vec<Vec<u8>> = full.chunks(32).chain(partial.chunks(32)).map(<[u8]>::to_vec).collect();
        assert_eq!(
            mth(&leaves),
            root,
            "[{backend}] the leaves hash to the checkpoint's root"
        );

        // The entry bundles hold the entries those leaves hash.
        let mut entries = Vec::new();
        for path in ["tile/entries/000".to_owned(), format!("tile/entries/001.p/{rest}")] {
            let (status, _, bundle) = get(path).await;
            assert_eq!(status, 200, "[{backend}]");
            let mut at = 0;
            while at < bundle.len() {
                let len = u16::from_be_bytes([bundle[at], bundle[at + 1]]) as usize;
                entries.push(bundle[at + 2..at + 2 + len].to_vec());
                at += 2 + len;
            }
        }
        assert_eq!(entries.len(), size, "[{backend}]");
        for (entry, leaf) in entries.iter().zip(&leaves) {
            let hashed = Sha256::new()
                .chain_update([0u8])
                .chain_update(entry)
                .finalize()
                .to_vec();
            assert_eq!(&hashed, leaf, "[{backend}]");
        }

        // Level 1: the first 256 leaves' subtree, as a partial tile of width 1.
        let (status, _, level1) = get("tile/1/000.p/1".into()).await;
        assert_eq!(status, 200, "[{backend}]");
        assert_eq!(level1, mth(&leaves[..256]), "[{backend}]");

        // Nothing past the signed tree, and a path of another spelling is refused.
        assert_eq!(get("tile/0/001".into()).await.0, 404, "[{backend}]");
        assert_eq!(get(format!("tile/0/001.p/{}", rest + 1)).await.0, 404, "[{backend}]");
        assert_eq!(get("tile/1/000".into()).await.0, 404, "[{backend}]");
        assert_eq!(get("tile/0/0".into()).await.0, 400, "[{backend}]");
        assert_eq!(get("tile/0/x000/000".into()).await.0, 400, "[{backend}]");
    }
}
