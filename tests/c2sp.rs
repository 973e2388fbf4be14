//! Conformance with the C2SP texts, checked by implementations written apart from
//! ours: the `signed_note` crate reads and verifies the checkpoints the server
//! serves; cosignatures are checked with `ed25519-dalek` over the message the
//! `tlog-cosignature` text defines, composed here; and our note code verifies and
//! reproduces the example of the signed-note text (the Go `sumdb/note` vector).
//! The served checkpoints on SQLite and PostgreSQL.

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
