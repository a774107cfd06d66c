//! The per-frontend `log-format`, built from the operator's `user_log_format`.

use crate::escape::escape_word;
use crate::RenderError;

/// Log-format aliases HAProxy only knows in HTTP mode (it refuses most of them in a TCP
/// frontend, and the others carry nothing there).
const HTTP_ONLY_ALIASES: &[&str] = &[
    "CC", "CS", "HM", "HP", "HPO", "HQ", "HU", "HV", "ST", "TR", "Ta", "Th", "Ti", "Tq", "Tr",
    "hr", "hrl", "hs", "hsl", "r",
];

/// Build the `log-format` word for one frontend.
///
/// * `{{ project_id }}` and `{{ lb_id }}` become the load balancer's project and id (a `%`
///   in them is doubled, so it stays literal text);
/// * in a TCP-mode frontend, HTTP-only variables become `-`;
/// * without TLS termination, `%[ssl_c_*]` samples become `-`, as they can never have a value;
/// * the result is escaped into one configuration word.
pub fn frontend_log_format(
    template: &str,
    project_id: &str,
    lb_id: &str,
    http_mode: bool,
    tls_terminated: bool,
) -> Result<String, RenderError> {
    let substituted = template
        .replace("{{ project_id }}", &project_id.replace('%', "%%"))
        .replace("{{ lb_id }}", &lb_id.replace('%', "%%"));
    let filtered = filter_variables(&substituted, http_mode, tls_terminated);
    escape_word(&filtered, crate::Subject::Settings, "user_log_format")
}

/// Replace the variables that cannot appear in this frontend by `-`.
fn filter_variables(format: &str, http_mode: bool, tls_terminated: bool) -> String {
    let chars: Vec<char> = format.chars().collect();
    let mut out = String::with_capacity(format.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // `%%` is a literal percent sign.
        if chars.get(i + 1) == Some(&'%') {
            out.push_str("%%");
            i += 2;
            continue;
        }
        let start = i;
        let mut j = i + 1;
        if chars.get(j) == Some(&'{') {
            while j < chars.len() && chars[j] != '}' {
                j += 1;
            }
            j = (j + 1).min(chars.len()); // past '}'
        }
        let drop = if chars.get(j) == Some(&'[') {
            let body_start = j + 1;
            while j < chars.len() && chars[j] != ']' {
                j += 1;
            }
            let body: String = chars[body_start.min(chars.len())..j.min(chars.len())]
                .iter()
                .collect();
            j += 1; // past ']'
            !tls_terminated && body.trim_start().starts_with("ssl_c_")
        } else {
            let name_start = j;
            while j < chars.len() && chars[j].is_ascii_alphabetic() {
                j += 1;
            }
            let name: String = chars[name_start..j].iter().collect();
            !http_mode && HTTP_ONLY_ALIASES.contains(&name.as_str())
        };
        let end = j.min(chars.len());
        if drop {
            out.push('-');
        } else {
            out.extend(&chars[start..end]);
        }
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::DEFAULT_USER_LOG_FORMAT;

    #[test]
    fn default_format_per_mode() {
        let http = frontend_log_format(DEFAULT_USER_LOG_FORMAT, "p1", "lb1", true, false).unwrap();
        assert_eq!(
            http,
            "p1\\ lb1\\ %f\\ %ci\\ %cp\\ %t\\ %{+Q}r\\ %ST\\ %B\\ %U\\ -\\ -\\ %b\\ %s\\ %Tt\\ %tsc"
        );
        let tcp = frontend_log_format(DEFAULT_USER_LOG_FORMAT, "p1", "lb1", false, false).unwrap();
        assert_eq!(
            tcp,
            "p1\\ lb1\\ %f\\ %ci\\ %cp\\ %t\\ -\\ -\\ %B\\ %U\\ -\\ -\\ %b\\ %s\\ %Tt\\ %tsc"
        );
        let tls = frontend_log_format(DEFAULT_USER_LOG_FORMAT, "p1", "lb1", true, true).unwrap();
        assert!(tls.contains("%[ssl_c_verify]\\ %{+Q}[ssl_c_s_dn]"), "{tls}");
    }

    #[test]
    fn filter_table() {
        let cases: &[(&str, bool, &str)] = &[
            ("%HM %HPO %HP %r %{+Q}r", false, "- - - - -"),
            ("%HM %HPO %r", true, "%HM %HPO %r"),
            ("%Tt %tsc %B", false, "%Tt %tsc %B"),
            ("100%% %Tq", false, "100%% -"),
            (
                "%[src] %{+Q}[ssl_c_s_dn] %[ ssl_c_used]",
                false,
                "%[src] - -",
            ),
            ("trailing %", false, "trailing %"),
            ("unterminated %[ssl_c_used", false, "unterminated -"),
            ("unterminated %{+Q", false, "unterminated %{+Q"),
            ("%{+Q}", false, "%{+Q}"),
        ];
        for (input, http, want) in cases {
            assert_eq!(filter_variables(input, *http, false), *want, "{input:?}");
        }
    }

    #[test]
    fn percent_in_ids_stays_literal() {
        let f = frontend_log_format("{{ project_id }} %t", "a%b", "lb", true, false).unwrap();
        assert_eq!(f, "a%%b\\ %t");
    }
}
