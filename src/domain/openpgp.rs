//! OpenPGP (RFC 9580, version 4 keys and signatures) as far as a CSAF provider needs
//! it: an Ed25519 signing key with its user ID and self-signature, published as an
//! armored transferable public key, and armored detached signatures over documents
//! (CSAF 2.0 §7.1.19 and §7.1.20).
//!
//! Keys and signatures use the EdDSA algorithm (22, "EdDSALegacy" in RFC 9580) with
//! SHA-256: what every deployed OpenPGP implementation reads, GnuPG 2.2 included.
//! Nothing here parses OpenPGP from elsewhere; the test suite checks what this writes
//! with GnuPG and Sequoia's `sqv`.

use base64::Engine as _;
use ring::digest::{digest, Context, SHA1_FOR_LEGACY_USE_ONLY, SHA256};
use ring::signature::{Ed25519KeyPair, KeyPair};

/// Public-key algorithm 22: EdDSA (legacy encoding of Ed25519).
const ALGORITHM_EDDSA: u8 = 22;
/// Hash algorithm 8: SHA-256.
const HASH_SHA256: u8 = 8;
/// The curve OID of Ed25519 in legacy EdDSA keys (1.3.6.1.4.1.11591.15.1).
const ED25519_OID: [u8; 9] = [0x2B, 0x06, 0x01, 0x04, 0x01, 0xDA, 0x47, 0x0F, 0x01];

const TAG_SIGNATURE: u8 = 2;
const TAG_PUBLIC_KEY: u8 = 6;
const TAG_USER_ID: u8 = 13;

/// Signature type 0x00: a signature of a binary document.
const SIG_BINARY: u8 = 0x00;
/// Signature type 0x13: positive certification of a user ID and public key.
const SIG_POSITIVE_CERTIFICATION: u8 = 0x13;

const SUB_CREATION_TIME: u8 = 2;
const SUB_ISSUER_KEY_ID: u8 = 16;
const SUB_PREFERRED_HASH: u8 = 21;
const SUB_KEY_FLAGS: u8 = 27;
const SUB_FEATURES: u8 = 30;
const SUB_ISSUER_FINGERPRINT: u8 = 33;

/// An Ed25519 OpenPGP key that can sign: the seed, the time the key says it was
/// made (part of its fingerprint), and the user ID its self-signature binds.
pub struct OpenPgpKey {
    pair: Ed25519KeyPair,
    created: u32,
    user_id: String,
}

impl std::fmt::Debug for OpenPgpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenPgpKey")
            .field("fingerprint", &self.fingerprint())
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl OpenPgpKey {
    /// The key of a 32-byte Ed25519 seed, created at `created` (seconds since 1970).
    pub fn from_seed(seed: &[u8; 32], created: u32, user_id: &str) -> Result<Self, String> {
        if user_id.is_empty() || user_id.contains(['\n', '\r']) {
            return Err("an OpenPGP user ID is one non-empty line".into());
        }
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| "not an Ed25519 seed".to_owned())?;
        Ok(OpenPgpKey {
            pair,
            created,
            user_id: user_id.to_owned(),
        })
    }

    /// The body of the public-key packet.
    fn key_body(&self) -> Vec<u8> {
        let mut body = vec![4];
        body.extend_from_slice(&self.created.to_be_bytes());
        body.push(ALGORITHM_EDDSA);
        body.push(ED25519_OID.len() as u8);
        body.extend_from_slice(&ED25519_OID);
        // The point as an MPI: the 0x40 prefix and the 32-byte key, 263 bits.
        let mut point = vec![0x40];
        point.extend_from_slice(self.pair.public_key().as_ref());
        body.extend_from_slice(&mpi(&point));
        body
    }

    /// The version 4 fingerprint: SHA-1 over the framed public-key packet body.
    fn fingerprint_bytes(&self) -> [u8; 20] {
        let body = self.key_body();
        let mut hash = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
        hash.update(&key_frame(body.len()));
        hash.update(&body);
        let mut out = [0u8; 20];
        out.copy_from_slice(hash.finish().as_ref());
        out
    }

    /// The fingerprint as 40 upper-case hex digits, as CSAF provider metadata has it.
    pub fn fingerprint(&self) -> String {
        hex::encode_upper(self.fingerprint_bytes())
    }

    /// The key id: the fingerprint's last 8 bytes.
    fn key_id(&self) -> [u8; 8] {
        let fingerprint = self.fingerprint_bytes();
        let mut id = [0u8; 8];
        id.copy_from_slice(&fingerprint[12..]);
        id
    }

    fn issuer_subpackets(&self) -> (Vec<u8>, Vec<u8>) {
        let mut fingerprint = vec![4];
        fingerprint.extend_from_slice(&self.fingerprint_bytes());
        (
            subpacket(SUB_ISSUER_FINGERPRINT, &fingerprint),
            subpacket(SUB_ISSUER_KEY_ID, &self.key_id()),
        )
    }

    /// A signature packet of `kind` made at `at` over what `prefix` feeds the hash
    /// before the signature's own fields.
    fn signature(&self, kind: u8, at: u32, extra_hashed: &[u8], prefix: &[&[u8]]) -> Vec<u8> {
        let (issuer_fingerprint, issuer_id) = self.issuer_subpackets();
        let mut hashed = subpacket(SUB_CREATION_TIME, &at.to_be_bytes());
        hashed.extend_from_slice(&issuer_fingerprint);
        hashed.extend_from_slice(extra_hashed);
        let mut fields = vec![4, kind, ALGORITHM_EDDSA, HASH_SHA256];
        fields.extend_from_slice(&(hashed.len() as u16).to_be_bytes());
        fields.extend_from_slice(&hashed);
        let mut hash = Context::new(&SHA256);
        for part in prefix {
            hash.update(part);
        }
        hash.update(&fields);
        let mut trailer = vec![4, 0xFF];
        trailer.extend_from_slice(&(fields.len() as u32).to_be_bytes());
        hash.update(&trailer);
        let digest = hash.finish();
        // EdDSA in OpenPGP signs the digest itself.
        let signature = self.pair.sign(digest.as_ref());
        let (r, s) = signature.as_ref().split_at(32);
        let mut body = fields;
        body.extend_from_slice(&(issuer_id.len() as u16).to_be_bytes());
        body.extend_from_slice(&issuer_id);
        body.extend_from_slice(&digest.as_ref()[..2]);
        body.extend_from_slice(&mpi(r));
        body.extend_from_slice(&mpi(s));
        packet(TAG_SIGNATURE, &body)
    }

    /// The transferable public key (key, user ID, self-signature), armored.
    pub fn public_key_armored(&self) -> String {
        let body = self.key_body();
        let user_id = self.user_id.as_bytes();
        let mut certified = key_frame(body.len()).to_vec();
        certified.extend_from_slice(&body);
        let mut user_frame = vec![0xB4];
        user_frame.extend_from_slice(&(user_id.len() as u32).to_be_bytes());
        let mut extra = subpacket(SUB_KEY_FLAGS, &[0x03]);
        extra.extend_from_slice(&subpacket(SUB_PREFERRED_HASH, &[HASH_SHA256, 10]));
        extra.extend_from_slice(&subpacket(SUB_FEATURES, &[0x01]));
        let self_signature = self.signature(
            SIG_POSITIVE_CERTIFICATION,
            self.created,
            &extra,
            &[&certified, &user_frame, user_id],
        );
        let mut out = packet(TAG_PUBLIC_KEY, &body);
        out.extend_from_slice(&packet(TAG_USER_ID, user_id));
        out.extend_from_slice(&self_signature);
        armor("PUBLIC KEY BLOCK", &out)
    }

    /// An armored detached signature over `data`, made at `at` (seconds since 1970).
    pub fn sign_detached(&self, data: &[u8], at: u32) -> String {
        let packet = self.signature(SIG_BINARY, at.max(self.created), &[], &[data]);
        armor("SIGNATURE", &packet)
    }
}

/// The hash prefix of a public key: 0x99 and the body's two-byte length.
fn key_frame(len: usize) -> [u8; 3] {
    let len = (len as u16).to_be_bytes();
    [0x99, len[0], len[1]]
}

/// A multiprecision integer: its bit count, then its bytes without leading zeros.
fn mpi(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let bytes = &bytes[start..];
    let bits = bytes
        .first()
        .map_or(0, |first| (bytes.len() - 1) * 8 + (8 - first.leading_zeros() as usize));
    let mut out = (bits as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

fn subpacket(kind: u8, data: &[u8]) -> Vec<u8> {
    // Every subpacket here is shorter than 192 bytes: one length octet.
    let mut out = vec![(data.len() + 1) as u8, kind];
    out.extend_from_slice(data);
    out
}

/// A packet in the OpenPGP packet format, with its tag and length.
fn packet(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xC0 | tag];
    let len = body.len();
    if len < 192 {
        out.push(len as u8);
    } else if len < 8384 {
        let rest = len - 192;
        out.push((rest >> 8) as u8 + 192);
        out.push((rest & 0xFF) as u8);
    } else {
        out.push(0xFF);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// The CRC-24 of the armor's checksum line.
fn crc24(data: &[u8]) -> u32 {
    let mut crc: u32 = 0x00B7_04CE;
    for byte in data {
        crc ^= u32::from(*byte) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x0100_0000 != 0 {
                crc ^= 0x0186_4CFB;
            }
        }
    }
    crc & 0x00FF_FFFF
}

/// ASCII armor: the header line, base64 in lines of 64, the checksum, the footer.
fn armor(kind: &str, data: &[u8]) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let encoded = engine.encode(data);
    let mut out = format!("-----BEGIN PGP {kind}-----\n\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    let crc = crc24(data).to_be_bytes();
    out.push('=');
    out.push_str(&engine.encode(&crc[1..]));
    out.push_str(&format!("\n-----END PGP {kind}-----\n"));
    out
}

/// The fingerprint of an armored public key as [`OpenPgpKey::public_key_armored`]
/// writes it: of its first packet, which must be a version 4 public key.
pub fn fingerprint_of_armored(text: &str) -> Result<String, String> {
    let mut lines = text
        .lines()
        .skip_while(|l| l.trim() != "-----BEGIN PGP PUBLIC KEY BLOCK-----");
    if lines.next().is_none() {
        return Err("not an armored OpenPGP public key".into());
    }
    let body: String = lines
        .skip_while(|l| !l.trim().is_empty())
        .skip(1)
        .take_while(|l| !l.starts_with('=') && !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| format!("the armored key is not base64: {e}"))?;
    let (len, start) = match bytes.as_slice() {
        [tag, len, ..] if *tag == 0xC0 | TAG_PUBLIC_KEY && *len < 192 => (usize::from(*len), 2),
        [tag, a, b, ..] if *tag == 0xC0 | TAG_PUBLIC_KEY && (192..224).contains(a) => {
            ((usize::from(*a) - 192) * 256 + usize::from(*b) + 192, 3)
        }
        _ => return Err("the armored key does not start with a public-key packet".into()),
    };
    let key = bytes
        .get(start..start + len)
        .filter(|k| k.first() == Some(&4))
        .ok_or("the public-key packet is not a whole version 4 key")?;
    let mut hash = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
    hash.update(&key_frame(key.len()));
    hash.update(key);
    Ok(hex::encode_upper(hash.finish().as_ref()))
}

/// The seed of the OpenPGP key that belongs to a signing key's seed: derived so that
/// the one protected secret (and its rotation) covers both, while neither key's
/// signatures can be taken for the other's.
pub fn derive_seed(signing_seed: &[u8; 32]) -> [u8; 32] {
    let mut input = b"patchwarden OpenPGP signing key v1\n".to_vec();
    input.extend_from_slice(signing_seed);
    let hash = digest(&ring::digest::SHA512, &input);
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&hash.as_ref()[..32]);
    seed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> OpenPgpKey {
        OpenPgpKey::from_seed(&[7u8; 32], 1_765_000_000, "Example CSAF <security@example.com>").unwrap()
    }

    #[test]
    fn crc24_matches_the_rfc_parameters() {
        // The CRC of nothing is the initial value; of "123456789" the catalogued check value.
        assert_eq!(crc24(b""), 0x00B7_04CE);
        assert_eq!(crc24(b"123456789"), 0x0021_CF02);
    }

    #[test]
    fn mpis_count_bits_from_the_first_set_one() {
        assert_eq!(mpi(&[0x00, 0x01]), vec![0, 1, 1]);
        assert_eq!(mpi(&[0x40, 0xFF]), vec![0, 15, 0x40, 0xFF]);
        assert_eq!(mpi(&[0x80]), vec![0, 8, 0x80]);
        assert_eq!(mpi(&[]), vec![0, 0]);
    }

    #[test]
    fn packet_lengths_use_the_shortest_form() {
        assert_eq!(&packet(2, &[0; 191])[..2], &[0xC2, 191]);
        assert_eq!(&packet(2, &[0; 192])[..3], &[0xC2, 192, 0]);
        assert_eq!(&packet(2, &[0; 8383])[..3], &[0xC2, 223, 255]);
        assert_eq!(&packet(2, &[0; 8384])[..6], &[0xC2, 0xFF, 0, 0, 0x20, 0xC0]);
    }

    #[test]
    fn a_key_has_a_stable_fingerprint_that_depends_on_its_time() {
        let a = key();
        assert_eq!(a.fingerprint().len(), 40);
        assert_eq!(a.fingerprint(), key().fingerprint());
        let later = OpenPgpKey::from_seed(&[7u8; 32], 1_765_000_001, "Example CSAF <security@example.com>").unwrap();
        assert_ne!(a.fingerprint(), later.fingerprint());
        assert!(OpenPgpKey::from_seed(&[7u8; 32], 0, "two\nlines").is_err());
    }

    #[test]
    fn armor_has_header_checksum_and_footer() {
        let signature = key().sign_detached(b"document", 1_765_000_100);
        assert!(signature.starts_with("-----BEGIN PGP SIGNATURE-----\n\n"));
        assert!(signature.ends_with("-----END PGP SIGNATURE-----\n"));
        let lines: Vec<&str> = signature.lines().collect();
        let checksum = lines[lines.len() - 2];
        assert!(checksum.starts_with('=') && checksum.len() == 5, "{checksum}");
        let public = key().public_key_armored();
        assert!(public.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"));
    }

    #[test]
    fn a_signature_verifies_over_its_digest_and_not_over_another_document() {
        let key = key();
        let armored = key.sign_detached(b"document", 1_765_000_100);
        let body: String = armored.lines().skip(2).take_while(|l| !l.starts_with('=')).collect();
        let bytes = base64::engine::general_purpose::STANDARD.decode(body).unwrap();
        // Header (2 bytes), then version, type, algorithm, hash, hashed length.
        assert_eq!(&bytes[2..6], &[4, SIG_BINARY, ALGORITHM_EDDSA, HASH_SHA256]);
        let hashed_len = u16::from_be_bytes([bytes[6], bytes[7]]) as usize;
        let fields = &bytes[2..8 + hashed_len];
        let unhashed_len = u16::from_be_bytes([bytes[8 + hashed_len], bytes[9 + hashed_len]]) as usize;
        let after = 10 + hashed_len + unhashed_len;
        let r = &bytes[after + 2 + 2..after + 4 + 32];
        let s = &bytes[after + 4 + 32 + 2..];
        let digest_of = |data: &[u8]| {
            let mut hash = Context::new(&SHA256);
            hash.update(data);
            hash.update(fields);
            hash.update(&[4, 0xFF]);
            hash.update(&(fields.len() as u32).to_be_bytes());
            hash.finish()
        };
        let mut signature = r.to_vec();
        signature.extend_from_slice(s);
        let public = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key.pair.public_key().as_ref());
        assert_eq!(
            r.len(),
            32,
            "an r with a leading zero byte would be shorter; this seed's is not"
        );
        assert!(public.verify(digest_of(b"document").as_ref(), &signature).is_ok());
        assert!(public.verify(digest_of(b"documenT").as_ref(), &signature).is_err());
        assert_eq!(&bytes[after..after + 2], &digest_of(b"document").as_ref()[..2]);
    }

    #[test]
    fn the_fingerprint_reads_back_from_the_armored_key() {
        let key = key();
        assert_eq!(fingerprint_of_armored(&key.public_key_armored()), Ok(key.fingerprint()));
        assert!(fingerprint_of_armored("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n").is_err());
        assert!(fingerprint_of_armored("hello").is_err());
    }

    #[test]
    fn the_derived_seed_is_not_the_signing_seed() {
        let seed = [9u8; 32];
        assert_ne!(derive_seed(&seed), seed);
        assert_eq!(derive_seed(&seed), derive_seed(&seed));
    }
}
