//! oslo.policy's check language, the subset Octavia's rules and operators' policy files use:
//! `role:NAME`, `rule:NAME`, `is_admin:True|False`, `KEY:%(target_key)s` or `KEY:'literal'`
//! (a credential compared with the target or a constant), `@` (always), `!` (never),
//! `not`, `and`, `or` (in that order of precedence) and parentheses. An empty check string
//! allows everyone, as in oslo.policy. Pure: parsing and evaluation only.

use std::collections::HashMap;
use std::fmt;

/// A parsed check string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// `@` and the empty string.
    Always,
    /// `!`.
    Never,
    /// `role:NAME` (case-insensitive, as oslo.policy lower-cases roles).
    Role(String),
    /// `rule:NAME`: another rule of the policy (unknown rules are false).
    Rule(String),
    /// `is_admin:True` / `is_admin:False`.
    IsAdmin(bool),
    /// `KEY:VALUE`: the credential `KEY` equals `VALUE`, where `%(name)s` in `VALUE` is taken
    /// from the target (a missing target key makes the check false).
    Generic {
        key: String,
        value: String,
    },
    Not(Box<Check>),
    And(Vec<Check>),
    Or(Vec<Check>),
}

/// A check string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy check string {text:?}: {reason}")]
pub struct ParseError {
    pub text: String,
    pub reason: String,
}

/// What the caller brings to a policy decision (oslo.context's policy values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// Lower-cased role names.
    pub roles: Vec<String>,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub project_domain_id: Option<String>,
    pub user_domain_id: Option<String>,
    /// oslo's `is_admin`: the context is an admin one (noauth local operator, or
    /// `context_is_admin` passed).
    pub is_admin: bool,
}

impl Credentials {
    fn value(&self, key: &str) -> Option<String> {
        match key {
            "project_id" | "tenant_id" | "tenant" => self.project_id.clone(),
            "user_id" | "user" => self.user_id.clone(),
            "project_domain_id" => self.project_domain_id.clone(),
            "user_domain_id" => self.user_domain_id.clone(),
            "is_admin" => Some(if self.is_admin { "True" } else { "False" }.to_string()),
            _ => None,
        }
    }

    /// Whether the caller holds `role` (any case).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }
}

/// The object a rule is checked against (`{"project_id": ...}` in Octavia).
pub type Target = HashMap<&'static str, String>;

/// Looks up the named rules a `rule:NAME` check refers to.
pub trait Rules {
    fn evaluate_rule(&self, name: &str, target: &Target, creds: &Credentials, depth: u8) -> bool;
}

/// Deeper nesting than this is a loop in the policy (`a = rule:b`, `b = rule:a`): false.
pub const MAX_DEPTH: u8 = 32;

impl Check {
    /// Parse a check string.
    pub fn parse(text: &str) -> Result<Check, ParseError> {
        let tokens = tokenize(text);
        if tokens.is_empty() {
            return Ok(Check::Always);
        }
        let mut p = Parser {
            tokens,
            pos: 0,
            text,
        };
        let check = p.or_expr()?;
        if p.pos != p.tokens.len() {
            return Err(p.error(format!("unexpected {:?}", p.tokens[p.pos])));
        }
        Ok(check)
    }

    /// Evaluate for `creds` against `target`, resolving `rule:` through `rules`.
    pub fn evaluate(
        &self,
        target: &Target,
        creds: &Credentials,
        rules: &dyn Rules,
        depth: u8,
    ) -> bool {
        match self {
            Check::Always => true,
            Check::Never => false,
            Check::Role(r) => creds.has_role(r),
            Check::Rule(name) => {
                depth < MAX_DEPTH && rules.evaluate_rule(name, target, creds, depth + 1)
            }
            Check::IsAdmin(expected) => creds.is_admin == *expected,
            Check::Generic { key, value } => {
                let Some(expected) = substitute(value, target) else {
                    return false;
                };
                creds.value(key).is_some_and(|have| have == expected)
            }
            Check::Not(c) => !c.evaluate(target, creds, rules, depth),
            Check::And(cs) => cs.iter().all(|c| c.evaluate(target, creds, rules, depth)),
            Check::Or(cs) => cs.iter().any(|c| c.evaluate(target, creds, rules, depth)),
        }
    }

    /// `self or other`.
    pub fn or(self, other: Check) -> Check {
        match self {
            Check::Or(mut cs) => {
                cs.push(other);
                Check::Or(cs)
            }
            c => Check::Or(vec![c, other]),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, cs: &[Check], op: &str| {
            write!(f, "(")?;
            for (i, c) in cs.iter().enumerate() {
                if i > 0 {
                    write!(f, " {op} ")?;
                }
                write!(f, "{c}")?;
            }
            write!(f, ")")
        };
        match self {
            Check::Always => write!(f, "@"),
            Check::Never => write!(f, "!"),
            Check::Role(r) => write!(f, "role:{r}"),
            Check::Rule(r) => write!(f, "rule:{r}"),
            Check::IsAdmin(b) => write!(f, "is_admin:{}", if *b { "True" } else { "False" }),
            Check::Generic { key, value } => write!(f, "{key}:{value}"),
            Check::Not(c) => write!(f, "not {c}"),
            Check::And(cs) => join(f, cs, "and"),
            Check::Or(cs) => join(f, cs, "or"),
        }
    }
}

/// `%(name)s` replaced by the target's values; `None` when the target lacks one. Quoted
/// literals (`'x'` or `"x"`) lose their quotes.
fn substitute(value: &str, target: &Target) -> Option<String> {
    let v = value.trim();
    if v.len() >= 2
        && ((v.starts_with('\'') && v.ends_with('\'')) || (v.starts_with('"') && v.ends_with('"')))
    {
        return Some(v[1..v.len() - 1].to_string());
    }
    let mut out = String::new();
    let mut rest = v;
    while let Some(start) = rest.find("%(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find(")s")?;
        out.push_str(target.get(&after[..end])?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    Atom(String),
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut out = vec![];
    for word in text.split_whitespace() {
        let mut w = word;
        while let Some(rest) = w.strip_prefix('(') {
            out.push(Token::Open);
            w = rest;
        }
        // Trailing `)` close groups (a `%(name)s` substitution ends in `s`, never `)`).
        let mut closes = 0;
        while let Some(rest) = w.strip_suffix(')') {
            closes += 1;
            w = rest;
        }
        if !w.is_empty() {
            out.push(match w.to_ascii_lowercase().as_str() {
                "and" => Token::And,
                "or" => Token::Or,
                "not" => Token::Not,
                _ => Token::Atom(w.to_string()),
            });
        }
        out.extend(std::iter::repeat_n(Token::Close, closes));
    }
    out
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn error(&self, reason: String) -> ParseError {
        ParseError {
            text: self.text.to_string(),
            reason,
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn or_expr(&mut self) -> Result<Check, ParseError> {
        let mut items = vec![self.and_expr()?];
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            items.push(self.and_expr()?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Check::Or(items)
        })
    }

    fn and_expr(&mut self) -> Result<Check, ParseError> {
        let mut items = vec![self.not_expr()?];
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            items.push(self.not_expr()?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Check::And(items)
        })
    }

    fn not_expr(&mut self) -> Result<Check, ParseError> {
        if self.peek() == Some(&Token::Not) {
            self.pos += 1;
            return Ok(Check::Not(Box::new(self.not_expr()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Check, ParseError> {
        match self.tokens.get(self.pos).cloned() {
            Some(Token::Open) => {
                self.pos += 1;
                let c = self.or_expr()?;
                if self.peek() != Some(&Token::Close) {
                    return Err(self.error("missing ')'".into()));
                }
                self.pos += 1;
                Ok(c)
            }
            Some(Token::Atom(a)) => {
                self.pos += 1;
                atom(&a).map_err(|reason| self.error(reason))
            }
            Some(t) => Err(self.error(format!("unexpected {t:?}"))),
            None => Err(self.error("unexpected end".into())),
        }
    }
}

fn atom(a: &str) -> Result<Check, String> {
    match a {
        "@" => return Ok(Check::Always),
        "!" => return Ok(Check::Never),
        _ => {}
    }
    let (kind, value) = a
        .split_once(':')
        .ok_or_else(|| format!("{a:?} is not KIND:VALUE, @ or !"))?;
    if value.is_empty() {
        return Err(format!("{a:?} has no value"));
    }
    Ok(match kind {
        "role" => Check::Role(value.to_ascii_lowercase()),
        "rule" => Check::Rule(value.to_string()),
        "is_admin" => Check::IsAdmin(value.eq_ignore_ascii_case("true")),
        "http" | "https" => return Err(format!("{kind} checks are not supported")),
        _ => Check::Generic {
            key: kind.to_string(),
            value: value.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(HashMap<&'static str, Check>);

    impl Rules for Named {
        fn evaluate_rule(&self, name: &str, t: &Target, c: &Credentials, depth: u8) -> bool {
            self.0
                .get(name)
                .is_some_and(|check| check.evaluate(t, c, self, depth))
        }
    }

    fn creds(project: &str, roles: &[&str]) -> Credentials {
        Credentials {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            project_id: Some(project.into()),
            ..Default::default()
        }
    }

    fn target(project: &str) -> Target {
        Target::from([("project_id", project.to_string())])
    }

    fn eval(text: &str, c: &Credentials, t: &Target) -> bool {
        let rules = Named(HashMap::from([
            ("owner", Check::parse("project_id:%(project_id)s").unwrap()),
            ("loop", Check::parse("rule:loop").unwrap()),
        ]));
        Check::parse(text).unwrap().evaluate(t, c, &rules, 0)
    }

    #[test]
    fn octavia_check_strings_parse_and_decide() {
        let member = creds("p", &["member", "reader"]);
        let t = target("p");
        assert!(eval(
            "role:member and project_id:%(project_id)s",
            &member,
            &t
        ));
        assert!(!eval(
            "role:member and project_id:%(project_id)s",
            &member,
            &target("q")
        ));
        assert!(eval("role:MEMBER and rule:owner", &member, &t));
        assert!(!eval("is_admin:True or role:admin", &member, &t));
        assert!(eval("is_admin:False", &member, &t));
        assert!(eval("", &member, &t));
        assert!(eval("@", &member, &t));
        assert!(!eval("!", &member, &t));
        assert!(!eval("rule:missing", &member, &t));
        assert!(
            !eval("rule:loop", &member, &t),
            "a loop is false, not a stack overflow"
        );
        assert!(eval("not role:admin", &member, &t));
        // and binds tighter than or.
        assert!(eval("role:admin and role:x or role:reader", &member, &t));
        assert!(!eval("role:admin and (role:x or role:reader)", &member, &t));
        assert!(eval(
            "(role:x or (role:reader and rule:owner))",
            &member,
            &t
        ));
        assert!(eval(
            "user_id:'u1'",
            &Credentials {
                user_id: Some("u1".into()),
                ..member.clone()
            },
            &t
        ));
        // A target without the substituted key: false.
        assert!(!eval("project_id:%(project_id)s", &member, &Target::new()));
    }

    #[test]
    fn bad_check_strings_are_refused() {
        for bad in [
            "role:",
            "(role:a",
            "role:a and",
            "or role:a",
            "nonsense",
            "role:a)",
            "http://x",
        ] {
            assert!(Check::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_round_trips() {
        let c = Check::parse("role:a or (role:b and not rule:c)").unwrap();
        assert_eq!(Check::parse(&c.to_string()).unwrap(), c);
    }
}
