//! The layering test, in the way of rust-analyzer's tidy tests: it reads every
//! file under `src/`, finds each place where a module names another top-level
//! module of the crate, and fails, naming the file, the line and the rule, when
//! that import runs against the layers ARCHITECTURE.md describes.
//!
//! It needs no Rust parser. A scanner blanks out comments and string and
//! character literals (keeping the line breaks), a tokenizer follows the
//! paths that start at `crate`, `super`, `self` or, in `src/main.rs`, at
//! `flywheel`, through `use` groups over any number of lines, and inline
//! `mod name { .. }` blocks are tracked so that `super` resolves to the right
//! module. A path brought into scope by a `use` is caught at the `use`; macros
//! that build paths from pieces are out of its reach, and none of ours do.
//! Test code is held to the same rules as the code it tests: nothing is exempt.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The layers, from the bottom up, each with its rule in words. A module may
/// import only modules of the layers below its own: never one of its own
/// layer, never one above; a failure quotes the importer's rule.
/// `src/lib.rs` declares the modules and is not checked; `src/main.rs` sits
/// above every layer.
const LAYERS: &[(&[&str], &str)] = &[
    (
        &[
            "clock", "crypto", "error", "eval", "headers", "json", "mock", "runtime",
        ],
        "the foundations (and the mock upstream) never import anything of the crate; \
         eval, the pure core of evaluation, is one of them",
    ),
    (
        &["metrics"],
        "metrics imports only the foundations: what it shows of other parts \
         (the connection counts, the body budget) it reads through a trait \
         or a handle registered at start",
    ),
    (
        &["config", "http1", "store"],
        "config, http1 and store never import anything but the foundations, nor \
         each other: the store takes its settings as arguments, not as config",
    ),
    (
        &["audit"],
        "audit imports only the store's audit rows and the layers below: it \
         makes the events, the store keeps them",
    ),
    (
        &["auth", "privacy", "registry"],
        "auth, privacy and registry never import capture or anything above it, \
         nor each other",
    ),
    (
        &["capture", "datasets", "rollout"],
        "capture, datasets and rollout never import the HTTP surfaces (proxy, \
         feedback, admin), app or cli, nor each other",
    ),
    (
        &["experiments"],
        "experiments (evaluation runs over a dataset's examples) never import \
         the HTTP surfaces, app or cli: they reach upstreams through a trait \
         app implements",
    ),
    (
        &["admin", "feedback", "proxy"],
        "proxy, feedback and admin never import each other (app's router hands \
         each its requests), nor app or cli",
    ),
    (
        &["app"],
        "app, the composition root, never imports cli; nothing but cli imports app",
    ),
    (&["cli"], "nothing imports cli but src/main.rs"),
];

/// Rules that the layers alone do not say.
const ONLY_IMPORTED_BY: &[(&str, &[&str], &str)] = &[(
    "mock",
    &["cli"],
    "the mock upstream is started by the CLI for tests, benchmarks and demos; \
     nothing on a request's path imports it",
)];

/// `datasets::curate` is the pure core of dataset building: it imports only
/// these modules of the crate (never the rest of `datasets`), and none of the
/// paths in `CURATE_NO_IO`.
const CURATE_MAY_IMPORT: &[&str] = &["clock", "crypto", "json"];
const CURATE_NO_IO: &[&str] = &["std::fs", "std::net", "std::process", "tokio", "rusqlite"];
const CURATE_RULE: &str = "datasets::curate does no I/O: it imports only clock, crypto and json \
     of the crate (never the rest of datasets), and never std::fs, std::net, \
     std::process, tokio or rusqlite";

/// Imports that break a rule today and are known. Each names the violation and
/// what would end it. An entry that no longer matches an import fails the test,
/// so the list can only shrink.
const ALLOWED: &[(&str, &str, &str)] = &[];

#[test]
fn imports_follow_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let crate_map = CrateMap::read(&src);
    for name in ONLY_IMPORTED_BY
        .iter()
        .map(|r| r.0)
        .chain(ALLOWED.iter().map(|r| r.0))
    {
        let top = name.split("::").next().unwrap();
        assert!(
            crate_map.modules.iter().any(|m| m == top),
            "no module `{top}` in src/lib.rs"
        );
    }
    let mut unplaced: Vec<&str> = crate_map
        .modules
        .iter()
        .map(String::as_str)
        .filter(|m| layer_of(m).is_none())
        .collect();
    unplaced.sort_unstable();
    assert!(
        unplaced.is_empty(),
        "\nmodules with no layer: {unplaced:?}\nadd each to LAYERS in {}, and to ARCHITECTURE.md\n",
        file!()
    );

    let mut violations = String::new();
    let mut used = vec![false; ALLOWED.len()];
    let mut count = 0;
    for file in rust_files(&src) {
        let rel = file.strip_prefix(&src).unwrap().to_path_buf();
        let Some(module) = module_of(&rel) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let shown = Path::new("src").join(&rel);
        for import in imports(&module, &text) {
            let (to, broken) = match &import.target {
                Target::Crate(path) => {
                    let path = crate_map.resolve(path, &shown, import.line);
                    if module.first() != path.first() {
                        count += 1;
                    }
                    (unit(&path), check(&module, &path))
                }
                Target::External(path) => (path.join("::"), check_external(&module, path)),
            };
            let Some(rule) = broken else { continue };
            let from = unit(&module);
            if let Some(i) = ALLOWED.iter().position(|&(f, t, _)| f == from && t == to) {
                used[i] = true;
                continue;
            }
            writeln!(
                violations,
                "{}:{}: `{from}` imports `{}`\n    rule: {rule}",
                shown.display(),
                import.line,
                import.target.shown()
            )
            .unwrap();
        }
    }
    // A scan that finds almost nothing has stopped working, not found a tidy tree.
    assert!(
        count > 200,
        "only {count} imports found under src/: the scanner has broken"
    );
    if !violations.is_empty() {
        panic!(
            "\nimports that run against the layers (ARCHITECTURE.md, \"Layers\"):\n\n{violations}\n\
             move the code to the layer it belongs to; an exception goes in ALLOWED in {}, \
             with the reason\n",
            file!()
        );
    }
    let stale: Vec<String> = ALLOWED
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|((from, to, _), _)| format!("`{from}` -> `{to}`"))
        .collect();
    assert!(
        stale.is_empty(),
        "\nALLOWED lists imports that no longer happen: {}\nremove them from {}\n",
        stale.join(", "),
        file!()
    );
}

/// The layer of a top-level module (the binary is above them all).
fn layer_of(module: &str) -> Option<usize> {
    if module == "main" {
        return Some(LAYERS.len());
    }
    LAYERS
        .iter()
        .position(|(modules, _)| modules.contains(&module))
}

/// The name a rule knows a module by: its top-level module, or
/// `datasets::curate`, which has rules of its own.
fn unit(module: &[String]) -> String {
    match module {
        [d, c, ..] if d == "datasets" && c == "curate" => "datasets::curate".into(),
        [] => "main".into(),
        [top, ..] => top.clone(),
    }
}

/// The rule an import of `target` (a path from the crate root) by `module`
/// breaks, if any.
fn check(module: &[String], target: &[String]) -> Option<String> {
    let from = module.first().map_or("main", String::as_str);
    let to = target[0].as_str();
    if from == to {
        if unit(module) == "datasets::curate" && unit(target) != "datasets::curate" {
            return Some(CURATE_RULE.into());
        }
        return None;
    }
    if unit(module) == "datasets::curate" && !CURATE_MAY_IMPORT.contains(&to) {
        return Some(CURATE_RULE.into());
    }
    if let Some((_, importers, why)) = ONLY_IMPORTED_BY.iter().find(|(m, _, _)| *m == to) {
        if !importers.contains(&from) {
            return Some(format!(
                "only {} imports `{to}`: {why}",
                importers.join(", ")
            ));
        }
    }
    let (mine, theirs) = (layer_of(from).unwrap(), layer_of(to).unwrap());
    if theirs >= mine {
        return Some(LAYERS[mine].1.into());
    }
    None
}

fn check_external(module: &[String], path: &[String]) -> Option<String> {
    if unit(module) != "datasets::curate" {
        return None;
    }
    let joined = path.join("::");
    let io = CURATE_NO_IO
        .iter()
        .any(|p| joined == *p || joined.starts_with(&format!("{p}::")));
    io.then(|| CURATE_RULE.into())
}

/// The module a file under `src/` defines, as a path from the crate root;
/// `None` for `lib.rs`, which only declares the modules. `main.rs` is a crate
/// of its own and gets the empty path.
fn module_of(rel: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_str().unwrap().to_string())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.strip_suffix(".rs").unwrap();
    match (parts.is_empty(), stem) {
        (true, "lib") => return None,
        (true, "main") => return Some(Vec::new()),
        (_, "mod") => {}
        _ => parts.push(stem.to_string()),
    }
    Some(parts)
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The crate's top-level modules and the names `lib.rs` re-exports from them.
struct CrateMap {
    modules: Vec<String>,
    /// A re-exported name and the module it comes from (`run` -> `app`).
    reexports: Vec<(String, String)>,
}

impl CrateMap {
    fn read(src: &Path) -> CrateMap {
        let text = std::fs::read_to_string(src.join("lib.rs")).unwrap();
        let blank = blank(&text);
        let tokens = tokens(&blank);
        let modules: Vec<String> = tokens
            .windows(3)
            .filter(|w| w[0].text == "mod" && w[2].text == ";")
            .map(|w| w[1].text.to_string())
            .collect();
        let reexports = paths(&tokens)
            .into_iter()
            .filter(|p| p.len() > 1 && modules.contains(&p[0].text))
            .map(|p| (p.last().unwrap().text.clone(), p[0].text.clone()))
            .collect();
        assert!(
            modules.len() > 10,
            "only {} modules declared in src/lib.rs",
            modules.len()
        );
        CrateMap { modules, reexports }
    }

    /// `path` (from the crate root) with a re-exported first name replaced by
    /// the module it comes from; an unknown first name fails the test, so that
    /// nothing passes unchecked.
    fn resolve(&self, path: &[String], file: &Path, line: usize) -> Vec<String> {
        let first = &path[0];
        if self.modules.contains(first) {
            return path.to_vec();
        }
        if let Some((_, module)) = self.reexports.iter().find(|(name, _)| name == first) {
            return std::iter::once(module.clone())
                .chain(path[1..].iter().cloned())
                .collect();
        }
        panic!(
            "\n{}:{line}: `crate::{}` names no module of src/lib.rs and no name it re-exports\n",
            file.display(),
            path.join("::")
        );
    }
}

/// One path a file names.
#[derive(Debug, PartialEq)]
struct Import {
    /// The line of the path's first name after `crate`/`super`.
    line: usize,
    target: Target,
}

#[derive(Debug, PartialEq)]
enum Target {
    /// A path inside this crate, from its root.
    Crate(Vec<String>),
    /// A path into another crate (`std::fs::File`).
    External(Vec<String>),
}

impl Target {
    fn shown(&self) -> String {
        match self {
            Target::Crate(p) | Target::External(p) => p.join("::"),
        }
    }
}

/// Every path `text` names that leaves `module` (a path from the crate root;
/// empty for `src/main.rs`) for another module of the crate, and every path
/// into another crate.
fn imports(module: &[String], text: &str) -> Vec<Import> {
    let blank = blank(text);
    let tokens = tokens(&blank);
    // Inline `mod name {`, with the brace depth inside it.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i].text;
        match t {
            "{" => {
                depth += 1;
                if i >= 2 && tokens[i - 2].text == "mod" {
                    inline.push((tokens[i - 1].text.to_string(), depth));
                }
            }
            "}" => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            _ => {}
        }
        let starts = is_ident(t)
            && tokens.get(i + 1).is_some_and(|n| n.text == "::")
            && (i == 0 || !matches!(tokens[i - 1].text, "::" | "."));
        if !starts {
            i += 1;
            continue;
        }
        let here: Vec<String> = module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(name, _)| name.clone()))
            .collect();
        let (found, end) = tree(&tokens, i, Vec::new());
        for path in found {
            if let Some(import) = classify(module, &here, &path) {
                out.push(import);
            }
        }
        i = end;
    }
    out
}

/// Where a path found in module `here` (inside the file's `module`) leads:
/// `None` when it stays inside the file's top-level module (but inside
/// `datasets` itself, which `datasets::curate` must not reach), or is not a
/// path from a crate root at all (a type's associated item, a local module).
fn classify(module: &[String], here: &[String], path: &[Token]) -> Option<Import> {
    let names: Vec<&str> = path.iter().map(|t| t.text.as_str()).collect();
    let (target, line): (Vec<String>, usize) = match names[0] {
        "crate" if !module.is_empty() => (owned(&names[1..]), path.get(1)?.line),
        "flywheel" if module.is_empty() => (owned(&names[1..]), path.get(1)?.line),
        "super" => {
            let ups = names.iter().take_while(|n| **n == "super").count();
            assert!(
                ups <= here.len(),
                "`super` leaves the crate at line {}",
                path[0].line
            );
            let base = &here[..here.len() - ups];
            (
                base.iter().cloned().chain(owned(&names[ups..])).collect(),
                path.get(ups)?.line,
            )
        }
        "self" => return None,
        "std" | "core" | "alloc" | "tokio" | "rusqlite" => {
            return Some(Import {
                line: path[0].line,
                target: Target::External(owned(&names)),
            })
        }
        _ => return None,
    };
    if target.is_empty() || (module.first() == target.first() && unit(module) != "datasets::curate")
    {
        return None;
    }
    Some(Import {
        line,
        target: Target::Crate(target),
    })
}

fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// The paths of a path or `use` tree starting at `tokens[i]`, each prefixed
/// with `prefix`, and the index after it. `a::{b, c::{d, self}, e::*}` yields
/// `a::b`, `a::c::d`, `a::c` and `a::e`.
fn tree(tokens: &[Tok<'_>], mut i: usize, mut prefix: Vec<Token>) -> (Vec<Vec<Token>>, usize) {
    let mut out = Vec::new();
    while let Some(t) = tokens.get(i) {
        if t.text == "{" {
            i += 1;
            while i < tokens.len() && tokens[i].text != "}" {
                let (found, end) = tree(tokens, i, prefix.clone());
                out.extend(found);
                i = end;
                // Skip `as name` and reach the comma or the closing brace.
                while i < tokens.len() && !matches!(tokens[i].text, "," | "}") {
                    i += 1;
                }
                if tokens.get(i).is_some_and(|t| t.text == ",") {
                    i += 1;
                }
            }
            return (out, i + 1);
        }
        if t.text == "*" {
            i += 1;
            break;
        }
        if !is_ident(t.text) {
            break;
        }
        // `self` in a group names the group's prefix itself.
        if t.text != "self" || prefix.is_empty() {
            prefix.push(Token {
                text: t.text.to_string(),
                line: t.line,
            });
        }
        i += 1;
        let more = tokens.get(i).is_some_and(|n| n.text == "::")
            && tokens
                .get(i + 1)
                .is_some_and(|n| is_ident(n.text) || matches!(n.text, "{" | "*"));
        if !more {
            break;
        }
        i += 1;
    }
    if !prefix.is_empty() {
        out.push(prefix);
    }
    (out, i)
}

/// All paths of a token stream, each starting where a name is followed by `::`.
fn paths(tokens: &[Tok<'_>]) -> Vec<Vec<Token>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let starts = is_ident(tokens[i].text)
            && tokens.get(i + 1).is_some_and(|n| n.text == "::")
            && (i == 0 || tokens[i - 1].text != "::");
        if starts {
            let (found, end) = tree(tokens, i, Vec::new());
            out.extend(found);
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// A name of a path, with its line.
#[derive(Clone, Debug, PartialEq)]
struct Token {
    text: String,
    line: usize,
}

/// A token of the blanked text: a name, `::`, or one other character.
#[derive(Clone, Copy, Debug)]
struct Tok<'a> {
    text: &'a str,
    line: usize,
}

fn is_ident(s: &str) -> bool {
    s.starts_with(|c: char| c.is_alphabetic() || c == '_') && s != "_"
}

fn tokens(blank: &str) -> Vec<Tok<'_>> {
    let bytes = blank.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c == b'\n' {
            line += 1;
            i += 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] >= 0x80)
            {
                i += 1;
            }
        } else if bytes[i..].starts_with(b"::") {
            i += 2;
        } else {
            i += 1;
        }
        out.push(Tok {
            text: &blank[start..i],
            line,
        });
    }
    out
}

/// `text` with every comment and every string, byte-string and character
/// literal replaced by spaces; line breaks are kept, so lines still count.
fn blank(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank_out = |out: &mut String, from: &[char]| {
        for &c in from {
            out.push(if c == '\n' { '\n' } else { ' ' });
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        // Line comment, doc comments included.
        if c == '/' && next == Some('/') {
            let end = chars[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(chars.len(), |p| i + p);
            blank_out(&mut out, &chars[i..end]);
            i = end;
            continue;
        }
        // Block comment, nested ones included.
        if c == '/' && next == Some('*') {
            let (mut j, mut open) = (i + 2, 1);
            while j < chars.len() && open > 0 {
                if chars[j] == '/' && chars.get(j + 1) == Some(&'*') {
                    open += 1;
                    j += 2;
                } else if chars[j] == '*' && chars.get(j + 1) == Some(&'/') {
                    open -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank_out(&mut out, &chars[i..j]);
            i = j;
            continue;
        }
        // A name: kept, unless it opens a raw string (`r"`, `r#"`, `br#"`).
        if c.is_alphanumeric() || c == '_' {
            let mut j = i;
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            let word: String = chars[i..j].iter().collect();
            if word == "r" || word == "br" || word == "cr" {
                let hashes = chars[j..].iter().take_while(|&&c| c == '#').count();
                if chars.get(j + hashes) == Some(&'"') {
                    let close: Vec<char> = std::iter::once('"')
                        .chain(std::iter::repeat_n('#', hashes))
                        .collect();
                    let body = j + hashes + 1;
                    let end = (body..chars.len())
                        .find(|&k| chars[k..].starts_with(&close))
                        .map_or(chars.len(), |k| k + close.len());
                    blank_out(&mut out, &chars[i..end]);
                    i = end;
                    continue;
                }
            }
            out.extend(&chars[i..j]);
            i = j;
            continue;
        }
        // A string (a `b` or `c` before it stays as a name: harmless).
        if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(chars.len());
            blank_out(&mut out, &chars[i..end]);
            i = end;
            continue;
        }
        // A character literal; a lifetime or a label stays as it is.
        if c == '\'' {
            let end = if next == Some('\\') {
                (i + 3..chars.len())
                    .find(|&k| chars[k] == '\'')
                    .map(|k| k + 1)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            if let Some(end) = end {
                blank_out(&mut out, &chars[i..end]);
                i = end;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

mod scanner {
    use super::*;

    fn module(path: &str) -> Vec<String> {
        path.split("::")
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    /// The paths `text` names from inside `module`, as `line:path`.
    fn found(module_path: &str, text: &str) -> Vec<String> {
        imports(&module(module_path), text)
            .into_iter()
            .map(|i| format!("{}:{}", i.line, i.target.shown()))
            .collect()
    }

    #[test]
    fn a_use_group_over_several_lines() {
        let text = "use std::sync::Arc;\n\
                    use crate::{\n    \
                        store::{InteractionStore,\n        FeedbackStore},\n    \
                        metrics::Metrics as M,\n    \
                        capture::{self, Interaction},\n    \
                        proxy::*,\n\
                    };\n";
        assert_eq!(
            found("admin", text),
            [
                "1:std::sync::Arc",
                "3:store::InteractionStore",
                "3:store::FeedbackStore",
                "5:metrics::Metrics",
                "6:capture",
                "6:capture::Interaction",
                "7:proxy",
            ]
        );
    }

    #[test]
    fn paths_in_comments_and_literals_are_not_imports() {
        let text = "// use crate::admin;\n\
                    /// See [`crate::admin::handle`].\n\
                    /* use crate::admin; /* nested */ crate::admin */\n\
                    let a = \"crate::admin::handle \\\" crate::admin\";\n\
                    let b = r#\"crate::admin \"quoted\" crate::admin\"#;\n\
                    let c = b\"crate::admin\";\n\
                    let q = '\"'; let e = '\\''; let v = ['\\'','\"']; fn f<'a>(x: &'a str) {}\n\
                    let d = crate::store::open();\n";
        assert_eq!(found("proxy", text), ["8:store::open"]);
    }

    #[test]
    fn super_resolves_through_files_and_inline_modules() {
        // In src/app/listen.rs, `super` is app and `super::super` the crate root.
        let text = "use super::Gateway;\nuse super::super::proxy::Proxy;\n";
        assert_eq!(found("app::listen", text), ["2:proxy::Proxy"]);
        // In src/clock.rs a test module's `super` is clock, a file's is the crate.
        let text = "use super::store;\n#[cfg(test)]\nmod tests {\n    use super::*;\n    \
                    use super::super::json;\n}\nuse super::config::X;\n";
        assert_eq!(found("clock", text), ["1:store", "5:json", "7:config::X"]);
    }

    #[test]
    fn own_module_and_main_paths() {
        let text = "use crate::capture::Call;\nlet x = crate::capture::id::new_v7();\n";
        assert!(found("capture::writer", text).is_empty());
        // Inside datasets, curate's way up to the rest of datasets still counts.
        let text = "use super::super::Build;\nuse super::spec::Spec;\n";
        assert_eq!(
            found("datasets::curate::split", text),
            ["1:datasets::Build", "2:datasets::curate::spec::Spec"]
        );
        let text = "use flywheel::cli::{Cli, EXIT_FAILED};\nflywheel::runtime::alloc::go();\n";
        assert_eq!(
            found("", text),
            ["1:cli::Cli", "1:cli::EXIT_FAILED", "2:runtime::alloc::go"]
        );
    }

    #[test]
    fn the_rules_catch_what_they_say() {
        let m = module;
        assert!(check(&m("capture::writer"), &m("proxy::Call")).is_some());
        assert!(check(&m("proxy"), &m("admin::handle")).is_some());
        assert!(check(&m("admin"), &m("proxy")).is_some());
        assert!(check(&m("store::sqlite"), &m("config::Config")).is_some());
        assert!(check(&m("privacy::policy"), &m("capture")).is_some());
        let rule = check(&m("app"), &m("cli::run")).unwrap();
        assert!(rule.contains("never imports cli"), "{rule}");
        assert!(check(&m("datasets::curate::split"), &m("store")).is_some());
        assert!(check(&m("datasets::curate::split"), &m("datasets::Build")).is_some());
        assert!(check(&m("proxy"), &m("mock")).is_some());
        assert!(check_external(&m("datasets::curate"), &m("std::fs::File")).is_some());
        assert!(check_external(&m("datasets::curate"), &m("tokio")).is_some());
        assert!(check_external(&m("datasets"), &m("std::fs::File")).is_none());
        assert!(check(&m("datasets::curate::split"), &m("crypto::Sha256")).is_none());
        assert!(check(&m("datasets"), &m("datasets::curate::Builder")).is_none());
        assert!(check(&m("proxy"), &m("capture::Interaction")).is_none());
        assert!(check(&m("cli"), &m("app::run")).is_none());
        assert!(check(&m(""), &m("cli::run")).is_none());
    }
}
