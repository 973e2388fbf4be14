//! The log as C2SP `tlog-tiles`: the tree cut into tiles of 256 hashes, addressed
//! by level and index (`tile/<L>/<N>[.p/<W>]`, the index in three-digit path
//! elements, all but the last prefixed with `x`), and the entries in bundles of
//! 256 (`tile/entries/<N>[.p/<W>]`, each entry a big-endian 16-bit length and its
//! bytes). A full tile never changes; a partial one (`.p/<W>`, 1 to 255 hashes) is
//! the start of the full one to come.

use std::fmt;

/// Hashes (or entries) per full tile: tiles are 8 levels of the tree high.
pub const TILE_WIDTH: u64 = 256;
/// Tree levels per tile level.
pub const TILE_HEIGHT: u32 = 8;
/// The highest tile level: a level-8 tile's hashes would be of tree level 64.
const MAX_LEVEL: u8 = 7;

/// What a tile path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TilePath {
    /// `None` for an entry bundle.
    pub level: Option<u8>,
    pub index: u64,
    /// `None` for a full tile.
    pub width: Option<u16>,
}

impl TilePath {
    /// Reads the part of a path after `tile/`.
    pub fn parse(path: &str) -> Result<TilePath, String> {
        let mut parts: Vec<&str> = path.split('/').collect();
        let first = parts.first().copied().unwrap_or_default();
        let level = match first {
            "entries" => None,
            digits if !digits.is_empty() && digits.len() <= 2 && digits.bytes().all(|b| b.is_ascii_digit()) => {
                let level: u8 = digits.parse().map_err(|_| format!("`{digits}` is not a tile level"))?;
                if level > MAX_LEVEL || (digits.len() > 1 && digits.starts_with('0')) {
                    return Err(format!("`{digits}` is not a tile level (0 to {MAX_LEVEL})"));
                }
                Some(level)
            }
            other => return Err(format!("`{other}` is neither a tile level nor `entries`")),
        };
        parts.remove(0);
        // A partial tile: the last index element ends in `.p`, and the width follows.
        let mut width = None;
        if parts.len() >= 2 {
            if let Some(stem) = parts[parts.len() - 2].strip_suffix(".p") {
                let w = parts[parts.len() - 1];
                let value: u16 = w
                    .parse()
                    .ok()
                    .filter(|v| (1..TILE_WIDTH as u16).contains(v) && !w.starts_with('0'))
                    .ok_or_else(|| format!("`{w}` is not a partial tile's width (1 to 255)"))?;
                width = Some(value);
                parts.pop();
                let last = parts.len() - 1;
                parts[last] = stem;
            }
        }
        if parts.is_empty() {
            return Err("a tile path names an index".into());
        }
        let mut index: u64 = 0;
        let count = parts.len();
        for (i, part) in parts.iter().enumerate() {
            let digits = if i + 1 < count {
                part.strip_prefix('x')
                    .ok_or_else(|| format!("index element `{part}` is not `x` and three digits"))?
            } else {
                part
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("index element `{part}` is not three digits"));
            }
            let value: u64 = digits.parse().map_err(|_| format!("`{part}` is not a number"))?;
            index = index
                .checked_mul(1000)
                .and_then(|i| i.checked_add(value))
                .filter(|i| *i < (1 << 56))
                .ok_or_else(|| "the tile index is too large".to_owned())?;
        }
        // One spelling per index: no leading zero elements.
        if count > 1 && parts[0] == "x000" {
            return Err("the tile index has a leading zero element".into());
        }
        Ok(TilePath { level, index, width })
    }

    /// How many hashes (or entries) it holds.
    pub fn count(&self) -> u64 {
        self.width.map_or(TILE_WIDTH, u64::from)
    }

    /// The tree level of its hashes (entries: 0).
    pub fn tree_level(&self) -> u32 {
        u32::from(self.level.unwrap_or(0)) * TILE_HEIGHT
    }
}

impl fmt::Display for TilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.level {
            Some(level) => write!(f, "tile/{level}/")?,
            None => write!(f, "tile/entries/")?,
        }
        let mut groups = Vec::new();
        let mut n = self.index;
        loop {
            groups.push(n % 1000);
            n /= 1000;
            if n == 0 {
                break;
            }
        }
        for (i, group) in groups.iter().rev().enumerate() {
            if i + 1 < groups.len() {
                write!(f, "x{group:03}/")?;
            } else {
                write!(f, "{group:03}")?;
            }
        }
        if let Some(width) = self.width {
            write!(f, ".p/{width}")?;
        }
        Ok(())
    }
}

/// An entry bundle: each entry as a big-endian 16-bit length and its bytes.
pub fn entry_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for entry in entries {
        let len = u16::try_from(entry.len()).map_err(|_| "an entry is longer than 65,535 bytes".to_owned())?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_and_write_as_the_tiles_text_spells_them() {
        let cases = [
            ("tile/0/x001/x234/067", Some(0), 1_234_067, None),
            ("tile/1/000", Some(1), 0, None),
            ("tile/0/x001/000.p/8", Some(0), 1000, Some(8)),
            ("tile/entries/x123/456.p/255", None, 123_456, Some(255)),
            ("tile/7/999", Some(7), 999, None),
        ];
        for (text, level, index, width) in cases {
            let path = TilePath::parse(text.strip_prefix("tile/").unwrap()).unwrap();
            assert_eq!(path, TilePath { level, index, width }, "{text}");
            assert_eq!(path.to_string(), text);
        }
    }

    #[test]
    fn other_spellings_are_refused() {
        for bad in [
            "0/1",
            "0/0001",
            "0/x000/001",
            "0/001/x002",
            "8/000",
            "00/000",
            "0/000.p/0",
            "0/000.p/256",
            "0/000.p/08",
            "entries",
            "0",
            "0/",
            "x/000",
            "0/x1/000",
            "0/000/",
        ] {
            assert!(TilePath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bundle_is_length_prefixed_entries() {
        let bundle = entry_bundle([b"ab".as_slice(), b"".as_slice(), b"xyz".as_slice()]).unwrap();
        assert_eq!(bundle, b"\x00\x02ab\x00\x00\x00\x03xyz");
        assert!(entry_bundle([vec![0u8; 70_000].as_slice()]).is_err());
    }
}
