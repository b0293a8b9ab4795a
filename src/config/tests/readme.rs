//! The README's configuration tables against the declarations: every declared setting has its row,
//! with its flag, variable and default; every row is a declared setting; and each default stated as
//! a value, given as that value, changes nothing.

use super::*;
use crate::settings::Reach;

/// The rows of the README's tables headed "File key / flag": (key cell, variable, default).
fn rows() -> Vec<(String, String, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in readme.lines() {
        if line.starts_with("| File key / flag |") {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        let cells: Vec<&str> = line
            .split(" | ")
            .map(|c| c.trim_matches('|').trim())
            .collect();
        rows.push((cells[0].into(), cells[1].into(), cells[2].into()));
    }
    rows
}

/// The first cell a setting's row must have.
fn key_cell(s: &Setting) -> String {
    match (s.reach, s.flag()) {
        (Reach::File, _) => format!("`[{}]` (file only)", s.key),
        (_, Some(flag)) => format!("`{}` / `{flag}`", s.key),
        (_, None) => format!("`{}`", s.key),
    }
}

#[test]
fn the_readme_table_lists_every_setting_as_declared() {
    let rows = rows();
    assert!(rows.len() > 60, "{} rows found", rows.len());
    for s in settings() {
        let want = (
            key_cell(s),
            s.env().map_or("—".to_owned(), |e| format!("`{e}`")),
            s.default.to_owned(),
        );
        let row = rows.iter().find(|r| r.0 == want.0);
        assert_eq!(row, Some(&want), "README row of {}", s.key);
    }
    for (key, env, _) in &rows {
        // Logging is set before the configuration is read: a variable, not a setting.
        if key == "—" && env == "`KEYWAY_LOG`" {
            continue;
        }
        assert!(
            settings().any(|s| key_cell(s) == *key),
            "README row {key} is no declared setting"
        );
    }
}

#[test]
fn each_stated_default_is_the_default() {
    let defaults = raw_sections(&Figment::new());
    let mut checked = 0;
    for s in settings() {
        let Some(value) = s
            .default
            .strip_prefix('`')
            .and_then(|d| d.strip_suffix('`'))
            .filter(|d| !d.contains('`'))
        else {
            continue;
        };
        let env = s.env().unwrap();
        let given = Figment::new().merge(layers::Layer::environment(&|k| {
            (k == env).then(|| value.to_owned())
        }));
        assert_eq!(
            raw_sections(&given),
            defaults,
            "{} = {value} is not its default",
            s.key
        );
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} defaults compared");
    // The one default stated in words that once drifted (the help said 8 while the pool was 2).
    let pool = settings().find(|s| s.key == "database_pool_size").unwrap();
    assert_eq!(
        pool.default,
        format!(
            "`{}` (SQLite), `{}` (PostgreSQL)",
            crate::store::SQLITE_POOL_SIZE,
            crate::store::POSTGRES_POOL_SIZE
        )
    );
}

#[test]
fn help_texts_show_the_variable_and_the_default() {
    let bind = settings().find(|s| s.key == "bind").unwrap();
    assert_eq!(
        bind.help(),
        "Address to listen on. [default: 127.0.0.1:8080] [env: KEYWAY_BIND]"
    );
}
