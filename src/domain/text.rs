//! Free text that people type (names, labels, change summaries, reasons): one rule,
//! parameterised by how long it may be and whether it may span lines. Text is
//! trimmed; control characters are refused (a line break only where lines are
//! allowed), so nothing typed can forge a log line or a trusted comment.

use crate::domain::field::FieldError;

/// What a field of free text accepts.
#[derive(Clone, Copy, Debug)]
pub struct TextRule {
    pub max_chars: usize,
    pub multiline: bool,
}

/// A name or label: one line, at most 200 characters.
pub const NAME: TextRule = TextRule {
    max_chars: 200,
    multiline: false,
};
/// A change summary: lines allowed, at most 2000 characters.
pub const SUMMARY: TextRule = TextRule {
    max_chars: 2000,
    multiline: true,
};
/// An advisory title: at most 300 characters.
pub const TITLE: TextRule = TextRule {
    max_chars: 300,
    multiline: true,
};
/// Advisory prose (summary, workarounds, acknowledgements): at most 20,000 characters.
pub const PROSE: TextRule = TextRule {
    max_chars: 20_000,
    multiline: true,
};
/// A reason shown to customers (a yank, a withdrawal): one line, at most 2000 characters.
pub const REASON: TextRule = TextRule {
    max_chars: 2000,
    multiline: false,
};

impl TextRule {
    /// Checks `text` for `field`; with `required`, empty text is refused.
    pub fn check(self, field: &str, text: &str, required: bool) -> Result<String, FieldError> {
        let text = text.trim();
        let refuse = |message: String| FieldError {
            field: field.to_owned(),
            message,
        };
        if required && text.is_empty() {
            return Err(refuse(format!("{field} must not be empty: a {field} is required")));
        }
        if text.chars().count() > self.max_chars {
            return Err(refuse(format!("{field} must be at most {} characters", self.max_chars)));
        }
        let layout = |c: char| matches!(c, '\n' | '\r' | '\t');
        if text.chars().any(|c| c.is_control() && !(self.multiline && layout(c))) {
            let what = if self.multiline {
                "control characters other than line breaks and tabs"
            } else {
                "line breaks or control characters"
            };
            return Err(refuse(format!("{field} must not contain {what}")));
        }
        Ok(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_bounds() {
        assert_eq!(NAME.check("name", "  Acme  ", true).unwrap(), "Acme");
        assert!(NAME
            .check("name", "   ", true)
            .unwrap_err()
            .message
            .contains("must not be empty"));
        assert_eq!(NAME.check("label", "", false).unwrap(), "");
        assert!(NAME.check("name", &"x".repeat(201), true).is_err());
        assert!(NAME.check("name", &"é".repeat(200), true).is_ok());
    }

    #[test]
    fn line_breaks_only_where_lines_are_allowed() {
        assert!(SUMMARY.check("change_summary", "one\ntwo", true).is_ok());
        assert!(REASON.check("reason", "one\ntwo", true).is_err());
        assert!(SUMMARY.check("change_summary", "bell\u{7}", true).is_err());
        let err = NAME.check("name", "forged\r\nline", true).unwrap_err();
        assert_eq!(err.field, "name");
    }
}
