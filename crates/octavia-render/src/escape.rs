//! Turning model strings into single haproxy.cfg words.
//!
//! HAProxy splits a configuration line into words at unescaped blanks, starts a comment at an
//! unescaped `#` and opens quotes at `"`/`'`. Outside quotes a backslash makes the next
//! character literal, so we escape exactly those characters (and the backslash itself).
//! Control characters (CR, LF, tab, NUL, ...) cannot be written safely and are refused.

use crate::{RenderError, Subject};

/// Characters that must be preceded by a backslash to stay inside one literal word.
const SPECIAL: &[char] = &[' ', '\\', '#', '\'', '"'];

/// Escape `value` so HAProxy reads it back as exactly one word equal to `value`.
///
/// `object`/`field` only label the error for an empty value or a control character.
pub fn escape_word(
    value: &str,
    object: Subject,
    field: &'static str,
) -> Result<String, RenderError> {
    if value.is_empty() {
        return Err(RenderError::invalid(object, field, "must not be empty"));
    }
    let mut out = String::with_capacity(value.len() + 4);
    for c in value.chars() {
        if c.is_control() {
            return Err(RenderError::invalid(
                object,
                field,
                format!("contains the control character {c:?}"),
            ));
        }
        if SPECIAL.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(out)
}

/// Check that `value` is a name HAProxy may see inside a fetch argument (`req.hdr(<name>)`,
/// `req.cook(<name>)`, `ssl_c_s_dn(<name>)`); the rule is [`crate::support::fetch_name_problem`].
pub fn check_fetch_name(
    value: &str,
    object: Subject,
    field: &'static str,
) -> Result<(), RenderError> {
    match crate::support::fetch_name_problem(value) {
        Some(problem) => Err(RenderError::invalid(object, field, problem)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_table() {
        let cases: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("/api/v1", "/api/v1"),
            ("a b", "a\\ b"),
            ("^/img\\.png$", "^/img\\\\.png$"),
            ("x#y", "x\\#y"),
            ("it's", "it\\'s"),
            ("say \"hi\"", "say\\ \\\"hi\\\""),
            ("$HOME", "$HOME"),
            ("%[src]", "%[src]"),
            ("ünï", "ünï"),
        ];
        for (input, want) in cases {
            assert_eq!(
                &escape_word(input, Subject::Settings, "value").unwrap(),
                want,
                "{input:?}"
            );
        }
    }

    #[test]
    fn escape_refuses_empty_and_control_characters() {
        for bad in ["", "a\nb", "a\rb", "a\tb", "a\0b", "\u{7f}"] {
            let err = escape_word(bad, Subject::Settings, "value").unwrap_err();
            assert!(
                matches!(err, RenderError::InvalidValue { field: "value", .. }),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn fetch_names() {
        for ok in ["X-Forwarded-For", "JSESSIONID", "a.b_c~d|e^f", "CN"] {
            check_fetch_name(ok, Subject::Settings, "key").unwrap();
        }
        for bad in [
            "", "a b", "a(b", "a)b", "a,b", "a#b", "a'b", "a\"b", "a\\b", "a;b",
        ] {
            assert!(
                check_fetch_name(bad, Subject::Settings, "key").is_err(),
                "{bad:?}"
            );
        }
    }
}
