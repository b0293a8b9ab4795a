//! Arrows point down only: `http` (and the transport in `serve`) → `config` → `auth` core → `error` →
//! `store` → plain values (`domain`, `outbound`, the template engine `templates`, and `settings`,
//! how a setting is declared). A file may name its own layer and the ones below it; a name reaching
//! up (`auth` importing `http`, `config` importing `serve`) fails here with the line.
//! The wiring (`lib.rs`, `main.rs`, `cli/`, `import/`) sits on top and may name anything.

use std::path::{Path, PathBuf};

/// The layer of a top-level module of the crate, lowest first; `None` for the wiring on top.
fn layer(module: &str) -> Option<u8> {
    Some(match module {
        "domain" | "outbound" | "templates" | "settings" => 0,
        "store" => 1,
        "error" => 2,
        "auth" => 3,
        "config" => 4,
        "http" | "serve" => 5,
        "cli" | "import" | "lib" | "main" => return None,
        other => {
            panic!("src/{other}: new top-level module; give it a layer in tests/api/layers.rs")
        }
    })
}

/// The top-level modules a source text names through `crate::…`, with the line each is named on.
fn named_modules(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split("//").next().unwrap_or("");
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{auth::x, store}`: each name at the group's top level.
                let mut depth = 0;
                let mut name = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => name.clear(),
                        c if depth == 0
                            && (c.is_alphanumeric() || c == '_')
                            && !name.ends_with(':') =>
                        {
                            name.push(c)
                        }
                        ':' if depth == 0 && !name.is_empty() && !name.ends_with(':') => {
                            found.push((number + 1, name.clone()));
                            name.push(':');
                        }
                        _ => {}
                    }
                }
                if !name.is_empty() && !name.ends_with(':') {
                    found.push((number + 1, name));
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push((number + 1, name));
                }
            }
        }
    }
    found
}

/// Every `crate::` name in `text` (the file `file` of top-level module `own`) that reaches up.
fn violations(file: &str, own: &str, text: &str) -> Vec<String> {
    let Some(own_layer) = layer(own) else {
        return Vec::new();
    };
    named_modules(text)
        .into_iter()
        .filter(|(_, module)| layer(module).is_none_or(|l| l > own_layer))
        .map(|(line, module)| {
            format!("{file}:{line}: `{own}` names `crate::{module}`, a layer above it")
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_names_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 20,
        "expected the crate's sources under {src:?}"
    );
    let mut found = Vec::new();
    for path in files {
        let relative = path.strip_prefix(&src).unwrap();
        let own = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        found.extend(violations(
            &format!("src/{}", relative.display()),
            &own,
            &text,
        ));
    }
    assert!(
        found.is_empty(),
        "arrows must point down:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_every_way_of_naming_a_module() {
    let text = "use crate::http::client_addr::ClientAddr;\n\
                use crate::{domain::Email, config::Config, store};\n\
                let x = crate::serve::MIN; // crate::http in a comment is fine\n\
                use crate::store::Store;\n";
    assert_eq!(
        violations("src/auth/x.rs", "auth", text),
        [
            "src/auth/x.rs:1: `auth` names `crate::http`, a layer above it",
            "src/auth/x.rs:2: `auth` names `crate::config`, a layer above it",
            "src/auth/x.rs:3: `auth` names `crate::serve`, a layer above it",
        ]
    );
    assert!(violations("src/main.rs", "main", text).is_empty());
}
