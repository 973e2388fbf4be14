//! HTTP range and validator rules for downloads (RFC 9110): one byte range per
//! request, `If-Range` with the strong ETag, `If-None-Match`. Pure functions over
//! header values, tested here.

/// What to send for a `Range` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// The whole representation (no `Range`, one we ignore, or a stale `If-Range`).
    Full,
    /// Bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416: no byte of the range exists.
    Unsatisfiable,
}

/// Interprets a `Range` header over a representation of `size` bytes. Headers that
/// are not a single, well-formed byte range are ignored, as the RFC allows.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeAnswer {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let number = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match number(last) {
            None => RangeAnswer::Full,
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(_) if size == 0 => RangeAnswer::Unsatisfiable,
            Some(n) => RangeAnswer::Partial {
                start: size - n.min(size),
                end: size - 1,
            },
        },
        // bytes=N-: from N to the end.
        (false, true) => match number(first) {
            None => RangeAnswer::Full,
            Some(start) if start >= size => RangeAnswer::Unsatisfiable,
            Some(start) => RangeAnswer::Partial { start, end: size - 1 },
        },
        (false, false) => match (number(first), number(last)) {
            (Some(start), Some(end)) if start <= end => {
                if start >= size {
                    RangeAnswer::Unsatisfiable
                } else {
                    RangeAnswer::Partial {
                        start,
                        end: end.min(size - 1),
                    }
                }
            }
            _ => RangeAnswer::Full,
        },
        (true, true) => RangeAnswer::Full,
    }
}

/// Whether an `If-Range` header lets a range through: it must name our strong ETag.
/// A date, a weak tag or another tag means the client's copy is not ours.
pub fn if_range_allows(header: Option<&str>, etag: &str) -> bool {
    header.is_none_or(|value| value.trim() == etag)
}

/// Whether `If-None-Match` matches our ETag (weak comparison, as the RFC says).
pub fn none_match_hits(header: Option<&str>, etag: &str) -> bool {
    let Some(value) = header else {
        return false;
    };
    let bare = etag.trim_start_matches("W/");
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == bare)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeAnswer::*;

    #[test]
    fn single_ranges() {
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Partial { start: 0, end: 9 });
        assert_eq!(parse_range(Some("bytes=40-59"), 100), Partial { start: 40, end: 59 });
        assert_eq!(parse_range(Some("bytes=90-"), 100), Partial { start: 90, end: 99 });
        assert_eq!(parse_range(Some("bytes=90-1000"), 100), Partial { start: 90, end: 99 });
        assert_eq!(parse_range(Some("bytes=-10"), 100), Partial { start: 90, end: 99 });
        assert_eq!(parse_range(Some("bytes=-1000"), 100), Partial { start: 0, end: 99 });
    }

    #[test]
    fn unsatisfiable_and_ignored() {
        assert_eq!(parse_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=100-200"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=9-5"), 100), Full, "an invalid range is ignored");
        assert_eq!(
            parse_range(Some("bytes=0-1,5-6"), 100),
            Full,
            "several ranges are answered whole"
        );
        assert_eq!(parse_range(Some("items=0-1"), 100), Full);
        assert_eq!(parse_range(Some("bytes=a-b"), 100), Full);
    }

    #[test]
    fn validators() {
        let etag = "\"abc\"";
        assert!(if_range_allows(None, etag));
        assert!(if_range_allows(Some("\"abc\""), etag));
        assert!(!if_range_allows(Some("\"old\""), etag));
        assert!(!if_range_allows(Some("Wed, 21 Oct 2015 07:28:00 GMT"), etag));
        assert!(none_match_hits(Some("\"x\", \"abc\""), etag));
        assert!(none_match_hits(Some("W/\"abc\""), etag));
        assert!(none_match_hits(Some("*"), etag));
        assert!(!none_match_hits(Some("\"x\""), etag));
        assert!(!none_match_hits(None, etag));
    }
}
