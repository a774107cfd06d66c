//! A small Rust token scanner, enough for the tidy rules: which paths (`std::env::var`,
//! `tokio::net`, ...) a source file names, on which line, after `use` renames are resolved.
//!
//! Comments, string and character literals are skipped (a rule named in a doc comment is not a
//! use of it); items under `#[cfg(test)]` are dropped, and a `#[cfg(test)] mod name;` makes the
//! file of `name` test code. It is a token scan, not a parser: a path spelled through a macro or
//! an alias of an alias may be missed, and a local item that shadows a crate name may be
//! reported (rename it).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Punct(&'static str),
    /// A string literal's text between the quotes, escapes left as written.
    Str(String),
    /// Numbers, character literals, lifetimes: never part of a path.
    Other,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

impl Token {
    fn is_ident(&self, s: &str) -> bool {
        matches!(&self.tok, Tok::Ident(i) if i == s)
    }
    fn is_punct(&self, p: &str) -> bool {
        matches!(self.tok, Tok::Punct(q) if q == p)
    }
    fn ident(&self) -> Option<&str> {
        match &self.tok {
            Tok::Ident(i) => Some(i),
            _ => None,
        }
    }
}

const PUNCTS: &[&str] = &[
    "(", ")", "[", "]", "{", "}", "<", ">", ",", ";", ":", ".", "#", "!", "=", "*", "&", "+", "-",
    "/", "%", "^", "|", "?", "@", "$", "~", "\\",
];

fn punct(c: char) -> &'static str {
    let mut buf = [0u8; 4];
    let s: &str = c.encode_utf8(&mut buf);
    PUNCTS.iter().copied().find(|p| *p == s).unwrap_or("?")
}

fn tokenize(src: &str) -> Vec<Token> {
    let cs: Vec<char> = src.chars().collect();
    let at = |i: usize| cs.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // Skip a quoted literal whose opening quote is at `i`; returns its text and the index after it.
    let quoted = |mut i: usize, line: &mut usize| -> (String, usize) {
        let start = i + 1;
        i += 1;
        while i < cs.len() && cs[i] != '"' {
            if cs[i] == '\\' {
                i += 1;
            }
            if at(i) == '\n' {
                *line += 1;
            }
            i += 1;
        }
        (cs[start..i.min(cs.len())].iter().collect(), i + 1)
    };
    while i < cs.len() {
        let c = cs[i];
        let tok_line = line;
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < cs.len() && cs[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < cs.len() {
                if cs[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if cs[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if cs[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if c == '"' {
            let (text, next) = quoted(i, &mut line);
            out.push(Token {
                tok: Tok::Str(text),
                line: tok_line,
            });
            i = next;
        } else if matches!(c, 'b' | 'c') && at(i + 1) == '"' {
            let (text, next) = quoted(i + 1, &mut line);
            out.push(Token {
                tok: Tok::Str(text),
                line: tok_line,
            });
            i = next;
        } else if (c == 'r' || matches!(c, 'b' | 'c') && at(i + 1) == 'r')
            && raw_string_start(&cs, if c == 'r' { i + 1 } else { i + 2 }).is_some()
        {
            let open = if c == 'r' { i + 1 } else { i + 2 };
            let hashes = raw_string_start(&cs, open).unwrap_or(0);
            let start = open + hashes + 1;
            let mut j = start;
            loop {
                if j >= cs.len() {
                    break;
                }
                if cs[j] == '"' && (1..=hashes).all(|k| at(j + k) == '#') {
                    break;
                }
                if cs[j] == '\n' {
                    line += 1;
                }
                j += 1;
            }
            out.push(Token {
                tok: Tok::Str(cs[start..j.min(cs.len())].iter().collect()),
                line: tok_line,
            });
            i = j + 1 + hashes;
        } else if c == 'r' && at(i + 1) == '#' && (at(i + 2).is_alphabetic() || at(i + 2) == '_') {
            // A raw identifier `r#type`.
            let start = i + 2;
            i = start;
            while i < cs.len() && (cs[i].is_alphanumeric() || cs[i] == '_') {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Ident(cs[start..i].iter().collect()),
                line: tok_line,
            });
        } else if c == 'b' && at(i + 1) == '\'' {
            i = skip_char_literal(&cs, i + 1);
            out.push(Token {
                tok: Tok::Other,
                line: tok_line,
            });
        } else if c == '\'' {
            if at(i + 1) == '\\' || at(i + 2) == '\'' {
                i = skip_char_literal(&cs, i);
            } else {
                // A lifetime or label.
                i += 1;
                while i < cs.len() && (cs[i].is_alphanumeric() || cs[i] == '_') {
                    i += 1;
                }
            }
            out.push(Token {
                tok: Tok::Other,
                line: tok_line,
            });
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < cs.len() && (cs[i].is_alphanumeric() || cs[i] == '_') {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Ident(cs[start..i].iter().collect()),
                line: tok_line,
            });
        } else if c.is_ascii_digit() {
            while i < cs.len() && (cs[i].is_alphanumeric() || cs[i] == '_') {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Other,
                line: tok_line,
            });
        } else if c == ':' && at(i + 1) == ':' {
            out.push(Token {
                tok: Tok::Punct("::"),
                line: tok_line,
            });
            i += 2;
        } else {
            out.push(Token {
                tok: Tok::Punct(punct(c)),
                line: tok_line,
            });
            i += 1;
        }
    }
    out
}

/// `open` is just after the `r`: the number of `#` before a `"`, if a raw string starts there.
fn raw_string_start(cs: &[char], open: usize) -> Option<usize> {
    let mut n = 0;
    while cs.get(open + n) == Some(&'#') {
        n += 1;
    }
    (cs.get(open + n) == Some(&'"')).then_some(n)
}

/// `i` is at the opening `'` of a character literal; the index after its closing `'`.
fn skip_char_literal(cs: &[char], mut i: usize) -> usize {
    i += 1;
    while i < cs.len() && cs[i] != '\'' && cs[i] != '\n' {
        if cs[i] == '\\' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// The index just after the bracket group opening at `i` (`(`, `[` or `{`).
fn skip_group(ts: &[Token], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < ts.len() {
        if ts[i].is_punct("(") || ts[i].is_punct("[") || ts[i].is_punct("{") {
            depth += 1;
        } else if ts[i].is_punct(")") || ts[i].is_punct("]") || ts[i].is_punct("}") {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    i
}

/// If an attribute `#[cfg(...)]` / `#![cfg(...)]` that compiles only under test starts at `i`:
/// whether it is inner (`#!`) and the index after it.
fn test_cfg_attr(ts: &[Token], i: usize) -> Option<(bool, usize)> {
    let inner = ts.get(i + 1)?.is_punct("!");
    let j = if inner { i + 2 } else { i + 1 };
    if !(ts[i].is_punct("#") && ts.get(j)?.is_punct("[") && ts.get(j + 1)?.is_ident("cfg")) {
        return None;
    }
    let end = skip_group(ts, j);
    // Between `cfg(` and the closing `)]`.
    let pred = ts.get(j + 3..end.checked_sub(2)?)?;
    let test_only = match pred {
        [t] => t.is_ident("test"),
        [all, open, rest @ ..] if all.is_ident("all") && open.is_punct("(") => {
            // `all(..., test, ...)`: `test` at the top level of `all`.
            let mut depth = 0;
            rest.iter().any(|t| {
                if t.is_punct("(") {
                    depth += 1;
                } else if t.is_punct(")") {
                    depth -= 1;
                }
                depth == 0 && t.is_ident("test")
            })
        }
        _ => false,
    };
    test_only.then_some((inner, end))
}

/// Drop the items compiled only under test. Returns the remaining tokens, the modules declared
/// test-only by `#[cfg(test)] mod name;`, and whether the whole file is test-only.
fn strip_test_items(ts: Vec<Token>) -> (Vec<Token>, Vec<String>, bool) {
    let mut kept = Vec::with_capacity(ts.len());
    let mut test_mods = Vec::new();
    let mut i = 0;
    while i < ts.len() {
        let Some((inner, mut j)) = test_cfg_attr(&ts, i) else {
            kept.push(ts[i].clone());
            i += 1;
            continue;
        };
        if inner {
            return (Vec::new(), Vec::new(), true);
        }
        // Further attributes of the same item.
        while ts.get(j).is_some_and(|t| t.is_punct("#"))
            && ts.get(j + 1).is_some_and(|t| t.is_punct("["))
        {
            j = skip_group(&ts, j + 1);
        }
        let item_start = j;
        // The item ends at a `;` or at the `}` that closes its body, at its own depth, or just
        // before a bracket that closes what it sits in (a field, a last statement).
        let mut depth = 0i32;
        while j < ts.len() {
            let t = &ts[j];
            if t.is_punct("(") || t.is_punct("[") || t.is_punct("{") {
                depth += 1;
            } else if t.is_punct(")") || t.is_punct("]") || t.is_punct("}") {
                if depth == 0 {
                    break;
                }
                depth -= 1;
                if depth == 0 && t.is_punct("}") {
                    j += 1;
                    break;
                }
            } else if depth == 0 && t.is_punct(";") {
                j += 1;
                break;
            }
            j += 1;
        }
        let item = &ts[item_start..j];
        if let [.., m, name, semi] = item {
            if m.is_ident("mod") && semi.is_punct(";") {
                if let Some(name) = name.ident() {
                    test_mods.push(name.to_string());
                }
            }
        }
        i = j;
    }
    (kept, test_mods, false)
}

/// One path a file names, after `use` renames are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRef {
    /// Segments, `std::env::var` → `["std", "env", "var"]`; a glob import ends with `"*"`.
    pub segs: Vec<String>,
    pub line: usize,
    /// For a call `path(arg)` with a single identifier or string literal argument: that
    /// argument (a string literal keeps its quotes).
    pub arg: Option<String>,
}

impl PathRef {
    /// Whether this path is `item` or inside it, or a glob import that brings it in.
    pub fn names(&self, item: &[&str]) -> bool {
        match self.segs.split_last() {
            Some((last, prefix)) if last == "*" => {
                prefix.len() <= item.len() && prefix.iter().zip(item).all(|(a, b)| a == b)
            }
            _ => self.segs.len() >= item.len() && self.segs.iter().zip(item).all(|(a, b)| a == b),
        }
    }

    pub fn display(&self) -> String {
        self.segs.join("::")
    }
}

/// What a source file names.
#[derive(Debug, Default)]
pub struct Scanned {
    pub paths: Vec<PathRef>,
    /// `#[cfg(test)] mod name;`: the files of these modules are test code.
    pub test_mods: Vec<String>,
    /// `#![cfg(test)]`: the whole file is test code.
    pub test_only: bool,
}

/// Flatten the use tree starting at `*i` (after `use`) into `(path, name bound)` pairs.
fn use_tree(
    ts: &[Token],
    i: &mut usize,
    mut prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, String)>,
) {
    if ts.get(*i).is_some_and(|t| t.is_punct("::")) {
        *i += 1;
    }
    while let Some(t) = ts.get(*i) {
        if let Some(seg) = t.ident() {
            prefix.push(seg.to_string());
            *i += 1;
            if ts.get(*i).is_some_and(|t| t.is_punct("::")) {
                *i += 1;
                continue;
            }
            if prefix.last().is_some_and(|s| s == "self") {
                prefix.pop();
            }
            let mut bound = prefix.last().cloned().unwrap_or_default();
            if ts.get(*i).is_some_and(|t| t.is_ident("as")) {
                bound = ts
                    .get(*i + 1)
                    .and_then(Token::ident)
                    .unwrap_or("_")
                    .to_string();
                *i += 2;
            }
            out.push((prefix, bound));
            return;
        } else if t.is_punct("*") {
            *i += 1;
            prefix.push("*".into());
            out.push((prefix, String::new()));
            return;
        } else if t.is_punct("{") {
            *i += 1;
            while let Some(t) = ts.get(*i) {
                if t.is_punct("}") {
                    *i += 1;
                    break;
                } else if t.is_punct(",") {
                    *i += 1;
                } else {
                    let before = *i;
                    use_tree(ts, i, prefix.clone(), out);
                    if *i == before {
                        *i += 1;
                    }
                }
            }
            return;
        } else {
            return;
        }
    }
}

/// Scan one source file.
pub fn scan(src: &str) -> Scanned {
    let (ts, test_mods, test_only) = strip_test_items(tokenize(src));
    let mut uses: Vec<(PathRef, String)> = Vec::new();
    let mut code: Vec<PathRef> = Vec::new();
    let mut i = 0;
    while i < ts.len() {
        let t = &ts[i];
        if t.is_ident("use") {
            let line = t.line;
            i += 1;
            let mut flat = Vec::new();
            use_tree(&ts, &mut i, Vec::new(), &mut flat);
            for (segs, bound) in flat {
                uses.push((
                    PathRef {
                        segs,
                        line,
                        arg: None,
                    },
                    bound,
                ));
            }
            continue;
        }
        if t.is_ident("extern") && ts.get(i + 1).is_some_and(|t| t.is_ident("crate")) {
            if let Some(name) = ts.get(i + 2).and_then(Token::ident) {
                let bound = match ts.get(i + 3) {
                    Some(a) if a.is_ident("as") => {
                        ts.get(i + 4).and_then(Token::ident).unwrap_or(name)
                    }
                    _ => name,
                };
                uses.push((
                    PathRef {
                        segs: vec![name.to_string()],
                        line: t.line,
                        arg: None,
                    },
                    bound.to_string(),
                ));
            }
            i += 3;
            continue;
        }
        let starts_path = t.ident().is_some()
            || t.is_punct("::") && ts.get(i + 1).and_then(Token::ident).is_some();
        let continues_path = i > 0 && (ts[i - 1].is_punct("::") || ts[i - 1].is_punct("."));
        if !starts_path || continues_path {
            i += 1;
            continue;
        }
        let line = t.line;
        let mut segs = Vec::new();
        if t.is_punct("::") {
            i += 1;
        }
        while let Some(seg) = ts.get(i).and_then(Token::ident) {
            segs.push(seg.to_string());
            i += 1;
            if ts.get(i).is_some_and(|t| t.is_punct("::"))
                && ts.get(i + 1).and_then(Token::ident).is_some()
            {
                i += 1;
            } else {
                break;
            }
        }
        let arg = match (ts.get(i), ts.get(i + 1), ts.get(i + 2)) {
            (Some(open), Some(a), Some(close)) if open.is_punct("(") && close.is_punct(")") => {
                match &a.tok {
                    Tok::Ident(s) => Some(s.clone()),
                    Tok::Str(s) => Some(format!("\"{s}\"")),
                    _ => None,
                }
            }
            _ => None,
        };
        code.push(PathRef { segs, line, arg });
    }
    // Resolve the first segment of each path through the names `use` bound in this file.
    let bound: HashMap<&str, &[String]> = uses
        .iter()
        .filter(|(p, b)| !b.is_empty() && b != "_" && p.segs.last().is_some_and(|s| s != "*"))
        .map(|(p, b)| (b.as_str(), p.segs.as_slice()))
        .collect();
    let resolve = |p: &PathRef| -> PathRef {
        match p.segs.first().and_then(|s| bound.get(s.as_str())) {
            Some(full) if full.len() > 1 || full.first() != p.segs.first() => PathRef {
                segs: full.iter().chain(&p.segs[1..]).cloned().collect(),
                ..p.clone()
            },
            _ => p.clone(),
        }
    };
    let mut paths: Vec<PathRef> = uses.iter().map(|(p, _)| resolve(p)).collect();
    paths.extend(code.iter().map(resolve));
    Scanned {
        paths,
        test_mods,
        test_only,
    }
}

/// Every `.rs` file under `dir`, sorted.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The non-test source files of a crate (`<crate>/src/**/*.rs`, minus files that are test-only
/// modules), scanned. Tests, benches and examples live outside `src/` and are not read.
pub fn crate_sources(crate_dir: &Path) -> Vec<(PathBuf, Scanned)> {
    let src = crate_dir.join("src");
    let scanned: Vec<(PathBuf, Scanned)> = rust_files(&src)
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("tidy: cannot read {}: {e}", p.display()));
            let s = scan(&text);
            (p, s)
        })
        .collect();
    // Where the files of `#[cfg(test)] mod name;` live: `name.rs` and `name/` next to a crate
    // root or `mod.rs`, else in the directory named after the declaring file.
    let mut test_paths: BTreeSet<PathBuf> = BTreeSet::new();
    for (p, s) in &scanned {
        let root_like = matches!(
            p.file_name().and_then(|f| f.to_str()),
            Some("lib.rs" | "main.rs" | "mod.rs")
        ) || p.parent() == Some(src.join("bin").as_path());
        let base = if root_like {
            p.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            p.with_extension("")
        };
        for m in &s.test_mods {
            test_paths.insert(base.join(format!("{m}.rs")));
            test_paths.insert(base.join(m));
        }
    }
    scanned
        .into_iter()
        .filter(|(p, s)| !s.test_only && !test_paths.iter().any(|t| p.starts_with(t)))
        .collect()
}

#[test]
fn comments_strings_and_test_items_are_not_code() {
    let s = scan(
        r##"
        //! `std::env::var` in a doc comment
        /* std::fs::read /* nested */ std::fs::write */
        const A: &str = "std::fs::read";
        const B: &str = r#"std::env::var("X") "quoted""#;
        fn f<'a>(x: &'a str) -> char { let _ = b"x"; let _ = '\''; 'x' }
        #[cfg(test)]
        mod tests { fn g() { std::env::var("X"); } }
        #[cfg(test)]
        fn h() -> [u8; 2] { std::fs::read("y"); [0; 2] }
        #[cfg(test)]
        mod helpers;
        fn real() { std::env::var_os("Y"); }
        "##,
    );
    let seen: Vec<String> = s.paths.iter().map(PathRef::display).collect();
    assert!(seen.contains(&"std::env::var_os".to_string()), "{seen:?}");
    assert!(
        !seen
            .iter()
            .any(|p| p.starts_with("std::fs") || p == "std::env::var"),
        "{seen:?}"
    );
    assert_eq!(s.test_mods, vec!["helpers".to_string()]);
    let var_os = s
        .paths
        .iter()
        .find(|p| p.display() == "std::env::var_os")
        .unwrap();
    assert_eq!((var_os.line, var_os.arg.as_deref()), (13, Some("\"Y\"")));
}

#[test]
fn use_renames_and_groups_are_resolved() {
    let s = scan(
        "use std::{env, fs as filesystem, net::{IpAddr, TcpStream as Tcp}};\n\
         use std::env::var as get;\n\
         use tokio::*;\n\
         fn f() { env::vars(); filesystem::read(\"x\"); Tcp::connect(a); get(NAME); }\n",
    );
    let seen: Vec<String> = s.paths.iter().map(PathRef::display).collect();
    for want in [
        "std::env",
        "std::fs",
        "std::net::IpAddr",
        "std::net::TcpStream",
        "tokio::*",
        "std::env::vars",
        "std::fs::read",
        "std::net::TcpStream::connect",
        "std::env::var",
    ] {
        assert!(seen.contains(&want.to_string()), "{want} not in {seen:?}");
    }
    let glob = s.paths.iter().find(|p| p.display() == "tokio::*").unwrap();
    assert!(glob.names(&["tokio", "net"]));
    let get = s
        .paths
        .iter()
        .find(|p| p.display() == "std::env::var" && p.line == 4);
    assert_eq!(get.and_then(|p| p.arg.as_deref()), Some("NAME"));
}

#[test]
fn whole_file_test_cfg() {
    assert!(scan("#![cfg(test)]\nfn f() { std::env::var(\"X\"); }").test_only);
    assert!(!scan("#![cfg(not(test))]\nfn f() {}").test_only);
}
