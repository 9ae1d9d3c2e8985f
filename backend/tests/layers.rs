//! The backend's modules form layers: a module imports only modules of lower layers, so the
//! dependency graph has no cycle and the core (model, configuration, store, CA client) never
//! depends on what is built on it (worker, API, service). This test reads `src/` and fails
//! on an import that breaks the order, naming the file.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Top-level modules of `src/`, lowest layer first. A module may import modules of an
/// earlier entry, never of its own entry's neighbours or of a later entry.
const LAYERS: &[&[&str]] = &[
    // The core domain model: imports nothing of the crate.
    &["model"],
    // The configuration, parsed and typed once.
    &["config"],
    // Policy and seams: the issuance policy (when to renew and retry, the order budget), the
    // listeners' bounds and the sockets a service manager passes, metrics, readiness checks,
    // the seam between issuance and serving.
    &[
        "policy",
        "listener",
        "activation",
        "metrics",
        "certs",
        "health",
    ],
    // Durable state.
    &["store"],
    // The CA client.
    &["acme"],
    // What runs: the worker, the ARI walk, the listeners.
    &["jobs", "ari_refresh", "challenge", "sds", "api"],
    // Wiring and the operator's client.
    &["service", "cli"],
];

/// Test support (`#[cfg(test)]` only): the fakes and fixtures any module's tests use.
const TEST_SUPPORT: &[&str] = &["testing"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for `lib.rs` and `main.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_owned())
}

/// Every `crate::NAME` a source text mentions.
fn imports(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `acme_edge_crate::` and the like
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.push(name);
        }
    }
    found
}

#[test]
fn modules_import_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut modules = BTreeMap::new();
    let mut violations = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        if TEST_SUPPORT.contains(&module.as_str()) {
            continue;
        }
        let Some(layer) = layer_of(&module) else {
            violations.push(format!("{}: module {module} has no layer", file.display()));
            continue;
        };
        modules.insert(module.clone(), layer);
        let text = fs::read_to_string(file).expect("source file");
        for imported in imports(&text) {
            if imported == module || TEST_SUPPORT.contains(&imported.as_str()) {
                continue;
            }
            match layer_of(&imported) {
                Some(l) if l < layer => {}
                _ => violations.push(format!(
                    "{}: {module} imports {imported}",
                    file.strip_prefix(&src).unwrap_or(file).display()
                )),
            }
        }
    }
    assert!(modules.len() > 10, "read too few modules: {modules:?}");
    assert!(
        violations.is_empty(),
        "imports against the layer order:\n{}",
        violations.join("\n")
    );
}
