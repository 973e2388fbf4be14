//! The container of an evidence bundle: a first line naming the format, then parts,
//! each a header line `part <name> <length> <sha256>` followed by exactly `length`
//! bytes and a newline. The last part, `bundle.minisig`, signs every byte before
//! its header. So every byte is covered: a part's bytes by its SHA-256, the
//! headers and the order by the closing signature, and a changed byte is reported
//! with the number and name of the part it falls in.

use sha2::{Digest, Sha256};

/// The first line of every bundle.
pub const MAGIC: &str = "patchwarden-evidence-bundle v1\n";

/// The name of the closing signature part.
pub const SIGNATURE_PART: &str = "bundle.minisig";

/// One named part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A parsed bundle: its parts, and the bytes the closing signature covers.
#[derive(Clone, Debug)]
pub struct Parsed<'a> {
    pub parts: Vec<Part>,
    pub signed: &'a [u8],
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.split('/').any(|s| s.is_empty() || s == "." || s == "..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/'))
}

/// Writes `parts` after the first line; returns the bytes the signature will cover.
pub fn write(parts: &[Part]) -> Vec<u8> {
    let mut out = MAGIC.as_bytes().to_vec();
    for part in parts {
        append(&mut out, part);
    }
    out
}

/// Appends one part.
pub fn append(out: &mut Vec<u8>, part: &Part) {
    debug_assert!(valid_name(&part.name), "{}", part.name);
    out.extend_from_slice(
        format!(
            "part {} {} {}\n",
            part.name,
            part.bytes.len(),
            hex::encode(Sha256::digest(&part.bytes))
        )
        .as_bytes(),
    );
    out.extend_from_slice(&part.bytes);
    out.push(b'\n');
}

/// Reads a bundle, checking every part's length and SHA-256. Errors name the part
/// (`part 3 (log/entries.json)`) whose bytes or header are not as written.
pub fn parse(bytes: &[u8]) -> Result<Parsed<'_>, String> {
    let Some(mut rest) = bytes.strip_prefix(MAGIC.as_bytes()) else {
        return Err("the bundle's first line is not `patchwarden-evidence-bundle v1`".into());
    };
    let mut parts: Vec<Part> = Vec::new();
    let mut signed = None;
    while !rest.is_empty() {
        let number = parts.len() + 1;
        let after = parts
            .last()
            .map_or_else(|| "the first line".to_owned(), |p| format!("`{}`", p.name));
        let start = bytes.len() - rest.len();
        let header_end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| format!("part {number} (after {after}): its header line does not end"))?;
        let header = std::str::from_utf8(&rest[..header_end])
            .map_err(|_| format!("part {number} (after {after}): its header is not text"))?;
        let fields: Vec<&str> = header.split(' ').collect();
        let [word, name, length, sha256] = fields[..] else {
            return Err(format!(
                "part {number} (after {after}): its header is not `part <name> <length> <sha256>`"
            ));
        };
        if word != "part" || !valid_name(name) {
            return Err(format!(
                "part {number} (after {after}): its header is not `part <name> <length> <sha256>`"
            ));
        }
        let length: usize = length
            .parse()
            .ok()
            .filter(|_: &usize| !length.starts_with('0') || length == "0")
            .ok_or_else(|| format!("part {number} ({name}): its length `{length}` is not a number"))?;
        let body = &rest[header_end + 1..];
        if body.len() < length + 1 {
            return Err(format!("part {number} ({name}): the bundle ends inside it"));
        }
        let content = &body[..length];
        if body[length] != b'\n' {
            return Err(format!(
                "part {number} ({name}): its bytes do not end where its header says"
            ));
        }
        let actual = hex::encode(Sha256::digest(content));
        if actual != sha256 {
            return Err(format!(
                "part {number} ({name}): its bytes hash to {actual}, not to the {sha256} of its header"
            ));
        }
        if parts.iter().any(|p| p.name == name) {
            return Err(format!("part {number} ({name}): a part of this name came before"));
        }
        if signed.is_some() {
            return Err(format!("part {number} ({name}): nothing may follow {SIGNATURE_PART}"));
        }
        if name == SIGNATURE_PART {
            signed = Some(&bytes[..start]);
        }
        parts.push(Part {
            name: name.to_owned(),
            bytes: content.to_vec(),
        });
        rest = &body[length + 1..];
    }
    let signed = signed.ok_or_else(|| match parts.last() {
        Some(last) => format!(
            "part {} ({}): the bundle ends here, without its signature part {SIGNATURE_PART}",
            parts.len(),
            last.name
        ),
        None => format!("the bundle holds no parts after its first line, not even {SIGNATURE_PART}"),
    })?;
    Ok(Parsed { parts, signed })
}

impl Parsed<'_> {
    /// The part named `name`, with its number.
    pub fn get(&self, name: &str) -> Option<(usize, &Part)> {
        self.parts
            .iter()
            .enumerate()
            .find(|(_, p)| p.name == name)
            .map(|(i, p)| (i + 1, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let parts = [
            Part {
                name: "manifest.json".into(),
                bytes: b"{\"a\":1}".to_vec(),
            },
            Part {
                name: "advisory/r1.json".into(),
                bytes: b"document\nwith lines".to_vec(),
            },
        ];
        let mut out = write(&parts);
        append(
            &mut out,
            &Part {
                name: SIGNATURE_PART.into(),
                bytes: b"sig".to_vec(),
            },
        );
        out
    }

    #[test]
    fn parts_read_back_and_the_signed_prefix_ends_before_the_signature() {
        let bytes = sample();
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.parts.len(), 3);
        assert_eq!(parsed.get("advisory/r1.json").unwrap().1.bytes, b"document\nwith lines");
        assert!(std::str::from_utf8(parsed.signed).unwrap().ends_with("with lines\n"));
    }

    #[test]
    fn every_flipped_byte_names_a_part_or_is_left_visible_to_the_signature() {
        let bytes = sample();
        let original = parse(&bytes).unwrap().parts;
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            match parse(&bad) {
                Err(e) => assert!(e.contains("part ") || e.contains("first line"), "{at}: {e}"),
                // A header byte that still reads as a header (a name changed): the
                // parts differ, and the closing signature no longer covers them.
                Ok(parsed) => assert_ne!(parsed.parts, original, "flipping byte {at} went unnoticed"),
            }
        }
    }

    #[test]
    fn names_that_climb_out_are_refused() {
        for name in ["../x", "/etc/passwd", "a//b", "a/./b", "", "a b"] {
            assert!(!valid_name(name), "{name}");
        }
        assert!(valid_name("patches/pat_1.minisig"));
    }
}
