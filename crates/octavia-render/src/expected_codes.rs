//! Parsing a health monitor's `expected_codes` into HAProxy's `rstatus` regex.

use crate::RenderError;

/// Parse `expected_codes` (`200`, `200,202`, `200-204`, or a mix of lists and ranges) into the
/// list of HTTP status codes it names, in the order given, without duplicates.
///
/// Every code must be three digits between 100 and 599; a range must not run backwards.
pub fn parse_expected_codes(text: &str) -> Result<Vec<u16>, String> {
    fn push(c: u16, codes: &mut Vec<u16>) {
        if !codes.contains(&c) {
            codes.push(c);
        }
    }
    let mut codes: Vec<u16> = Vec::new();
    if text.trim().is_empty() {
        return Err("is empty".to_string());
    }
    for part in text.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (one_code(lo.trim())?, one_code(hi.trim())?);
                if lo > hi {
                    return Err(format!("range '{part}' runs backwards"));
                }
                for c in lo..=hi {
                    push(c, &mut codes);
                }
            }
            None => push(one_code(part)?, &mut codes),
        }
    }
    Ok(codes)
}

fn one_code(s: &str) -> Result<u16, String> {
    if s.len() != 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{s}' is not a three-digit HTTP status code"));
    }
    let code: u16 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a three-digit HTTP status code"))?;
    if !(100..=599).contains(&code) {
        return Err(format!("{code} is not an HTTP status code (100-599)"));
    }
    Ok(code)
}

/// The `http-check expect rstatus` argument for `expected_codes` (`None` means Octavia's
/// default, 200): an anchored alternation such as `^(200|202)$`.
pub fn rstatus_pattern(
    expected_codes: Option<&str>,
    object: crate::Subject,
) -> Result<String, RenderError> {
    let codes = parse_expected_codes(expected_codes.unwrap_or("200"))
        .map_err(|reason| RenderError::invalid(object, "expected_codes", reason))?;
    let alternatives: Vec<String> = codes.iter().map(u16::to_string).collect();
    Ok(format!("^({})$", alternatives.join("|")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_codes_table() {
        let cases: &[(&str, &[u16])] = &[
            ("200", &[200]),
            ("200,202", &[200, 202]),
            ("200, 202 ,204", &[200, 202, 204]),
            ("200-204", &[200, 201, 202, 203, 204]),
            ("301-302,200", &[301, 302, 200]),
            ("200,200-201", &[200, 201]),
            ("404-404", &[404]),
            ("599", &[599]),
        ];
        for (text, want) in cases {
            assert_eq!(parse_expected_codes(text).unwrap(), *want, "{text}");
        }
    }

    #[test]
    fn expected_codes_refusals() {
        for bad in [
            "", " ", "20", "2000", "abc", "099", "600", "204-200", "200-", "-200", "200,,201",
            "200;201", "2x0", "200-2 04",
        ] {
            assert!(parse_expected_codes(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn rstatus_is_anchored_and_defaults_to_200() {
        assert_eq!(
            rstatus_pattern(None, crate::Subject::Settings).unwrap(),
            "^(200)$"
        );
        assert_eq!(
            rstatus_pattern(Some("200-202,404"), crate::Subject::Settings).unwrap(),
            "^(200|201|202|404)$"
        );
        let err = rstatus_pattern(Some("2oo"), crate::Subject::Settings).unwrap_err();
        assert!(err.to_string().contains("expected_codes"), "{err}");
    }
}
