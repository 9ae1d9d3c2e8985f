//! The migration lint (part of `cargo xtask lint`): migrations are expand-only across one
//! release, so that the previous release keeps running on the schema a newer one migrated
//! (a rolling upgrade runs both against one database).
//!
//! A statement that removes or changes what an older release may still read or write is
//! refused unless its file names the release that stopped using it, on a line of its own:
//! `-- unused since: X.Y.Z` (the backend reads the same line, `store::schema`, and refuses
//! releases before X.Y.Z on such a schema). Refused without it:
//!
//! - `DROP` of anything but an index (a table, a column, a trigger, a function);
//! - `RENAME` (of a table or a column);
//! - a column made `NOT NULL` after the fact (`SET NOT NULL`), or given another type
//!   (`ALTER COLUMN ... TYPE`);
//! - `ADD COLUMN ... NOT NULL` without a `DEFAULT` (an older release's inserts would fail).
//!
//! `CREATE TABLE` may declare `NOT NULL` columns: no older release writes a new table.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::paths;

/// The line that allows a contracting migration, followed by a release.
const MARKER: &str = "-- unused since:";

/// Lint every migration of every engine; every finding is reported.
pub fn run() -> Result<()> {
    let root = paths::workspace_root().join("backend/migrations");
    let mut findings = Vec::new();
    for file in migration_files(&root)? {
        let sql = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let relative = file.strip_prefix(&root).unwrap_or(&file).display();
        findings.extend(lint(&sql).into_iter().map(|f| format!("{relative}: {f}")));
    }
    if findings.is_empty() {
        println!("xtask: ok    migrations are expand-only");
        return Ok(());
    }
    for finding in &findings {
        eprintln!("xtask: migration: {finding}");
    }
    bail!(
        "{} migration statement(s) are not expand-only; remove them, or name the release that \
         stopped using what they change (`{MARKER} X.Y.Z`, docs/contributing.md)",
        findings.len()
    )
}

fn migration_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for engine in std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))? {
        let engine = engine?.path();
        if !engine.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&engine)? {
            let file = file?.path();
            if file.extension().is_some_and(|e| e == "sql") {
                files.push(file);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// What is wrong with one migration's `sql`; empty when it is expand-only or says which
/// release stopped using what it changes.
fn lint(sql: &str) -> Vec<String> {
    let marker = sql
        .lines()
        .find_map(|line| line.trim().strip_prefix(MARKER))
        .map(str::trim);
    match marker {
        Some(release) if is_release(release) => return Vec::new(),
        Some(release) => return vec![format!("{MARKER} {release:?} names no release (X.Y.Z)")],
        None => {}
    }
    statements(sql)
        .iter()
        .filter_map(|statement| contraction(statement).map(|why| format!("{why}: {statement}")))
        .collect()
}

fn is_release(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The statements of `sql`, comments removed and white space folded, upper-cased. A `$$`
/// body (a PostgreSQL function) is kept in its statement, whatever semicolons it holds.
fn statements(sql: &str) -> Vec<String> {
    let code: Vec<&str> = sql
        .lines()
        .map(|line| line.split("--").next().unwrap_or_default())
        .collect();
    let code = code.join(" ");
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut in_body = false;
    let mut rest = code.as_str();
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("$$") {
            in_body = !in_body;
            current.push_str("$$");
            rest = &rest[2..];
            continue;
        }
        rest = &rest[c.len_utf8()..];
        if c == ';' && !in_body {
            statements.push(fold(&current));
            current.clear();
        } else {
            current.push(c);
        }
    }
    statements.push(fold(&current));
    statements.retain(|s| !s.is_empty());
    statements
}

fn fold(statement: &str) -> String {
    statement
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase()
}

/// Why `statement` (folded) is not expand-only, if it is not.
fn contraction(statement: &str) -> Option<&'static str> {
    let words: Vec<&str> = statement.split(' ').collect();
    let has = |phrase: &str| statement.contains(phrase);
    if words.first() == Some(&"DROP") && words.get(1) != Some(&"INDEX") {
        return Some("drops what an older release may use");
    }
    if words.first() == Some(&"ALTER") && has(" DROP ") && !has(" DROP DEFAULT") {
        return Some("drops what an older release may use");
    }
    if has(" RENAME ") || statement.ends_with(" RENAME") {
        return Some("renames what an older release may use");
    }
    if has(" SET NOT NULL") {
        return Some("makes a column NOT NULL that an older release may leave empty");
    }
    if has(" ALTER COLUMN ") && (has(" TYPE ") || has(" SET DATA TYPE ")) {
        return Some("changes a column's type under an older release");
    }
    if has(" ADD COLUMN ") && has(" NOT NULL") && !has(" DEFAULT ") {
        return Some(
            "adds a NOT NULL column without a default, which an older release's inserts leave empty",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expanding_migrations_pass() {
        let sql = "-- A column with a default, a table, an index.\n\
                   ALTER TABLE orders ADD COLUMN resumed BOOLEAN NOT NULL DEFAULT FALSE;\n\
                   CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, n INTEGER NOT NULL);\n\
                   DROP INDEX IF EXISTS old_index;\n\
                   CREATE INDEX orders_name ON orders (name, created_at);";
        assert_eq!(lint(sql), Vec::<String>::new());
    }

    #[test]
    fn contracting_statements_are_found() {
        for sql in [
            "DROP TABLE challenges;",
            "ALTER TABLE domains DROP COLUMN lease;",
            "ALTER TABLE domains RENAME COLUMN lease TO claim;",
            "ALTER TABLE domains RENAME TO names;",
            "ALTER TABLE domains ALTER COLUMN lease SET NOT NULL;",
            "ALTER TABLE domains ALTER COLUMN attempts TYPE TEXT;",
            "ALTER TABLE domains ADD COLUMN owner TEXT NOT NULL;",
            "DROP TRIGGER domains_notify ON domains;",
        ] {
            assert_eq!(lint(sql).len(), 1, "{sql}");
        }
    }

    #[test]
    fn the_marker_allows_them_and_must_name_a_release() {
        let sql = "-- unused since: 0.3.0\nALTER TABLE domains DROP COLUMN lease;";
        assert!(lint(sql).is_empty());
        let sql = "-- unused since: soon\nALTER TABLE domains DROP COLUMN lease;";
        assert_eq!(lint(sql).len(), 1);
    }

    #[test]
    fn a_function_body_is_one_statement_and_comments_do_not_count() {
        let sql = "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\n\
                   BEGIN\n  PERFORM 1; -- DROP TABLE x;\n  RETURN NULL;\nEND;\n$$;\n\
                   -- the old trigger would be dropped here: DROP TRIGGER t ON d;";
        assert_eq!(statements(sql).len(), 1);
        assert!(lint(sql).is_empty());
    }

    #[test]
    fn this_workspace_passes() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../backend/migrations");
        for file in migration_files(&root).unwrap() {
            let sql = std::fs::read_to_string(&file).unwrap();
            assert_eq!(lint(&sql), Vec::<String>::new(), "{}", file.display());
        }
    }
}
