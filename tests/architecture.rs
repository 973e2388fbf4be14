//! The layering, checked over every source file so that code added later is held to
//! it too: services, jobs and domain rules know nothing of HTTP; handlers reach the
//! database and storage only through services and never use one another; and the
//! top-level modules of the library form no cycle.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn source_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(source_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// A file's code without its unit-test module and comments.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines()
        .filter(|line| {
            let t = line.trim_start();
            !t.starts_with("//")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level module a file of the library belongs to (`services`, `db`, …).
fn module_of(path: &Path) -> Option<String> {
    let relative = path.strip_prefix(src()).unwrap();
    let first = relative.components().next()?.as_os_str().to_string_lossy().into_owned();
    let name = first.trim_end_matches(".rs").to_owned();
    (name != "lib" && name != "main" && name != "cli").then_some(name)
}

fn files_under(module: &str) -> Vec<PathBuf> {
    source_files(&src())
        .into_iter()
        .filter(|p| module_of(p).as_deref() == Some(module))
        .collect()
}

#[test]
fn services_jobs_and_domain_know_nothing_of_http() {
    let forbidden = [
        "actix_web",
        "crate::handlers",
        "crate::http",
        "crate::auth",
        "crate::routes",
        "AppState",
        "AppError",
    ];
    let mut found = Vec::new();
    for module in ["services", "jobs", "domain", "db", "storage", "signing"] {
        let files = files_under(module);
        assert!(!files.is_empty(), "no files for {module}");
        for file in files {
            let code = code_of(&file);
            for word in forbidden {
                if code.contains(word) {
                    found.push(format!("{} uses {word}", file.display()));
                }
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn handlers_call_services_and_not_one_another() {
    let mut found = Vec::new();
    let files = files_under("handlers");
    assert!(files.len() > 15, "{files:?}");
    for file in files {
        let code = code_of(&file);
        for (word, why) in [
            ("crate::handlers", "uses another handler"),
            (".db.", "queries the database"),
            (".db\n", "queries the database"),
            (".storage.", "reads storage"),
            ("crate::db::DbConnection", "holds a connection"),
            ("diesel::", "builds a query"),
        ] {
            if code.contains(word) {
                found.push(format!("{} {why} ({word:?})", file.display()));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn top_level_modules_form_no_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in source_files(&src()) {
        let Some(module) = module_of(&file) else { continue };
        let code = code_of(&file);
        let targets = edges.entry(module.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && name != module {
                targets.insert(name);
            }
        }
    }
    assert!(edges.len() > 15, "{edges:?}");
    // Depth-first search for a back edge, reporting the cycle it closes.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        cycles: &mut Vec<String>,
    ) {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            cycles.push(cycle.join(" -> "));
            return;
        }
        if done.contains(node) {
            return;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            visit(next, edges, path, done, cycles);
        }
        path.pop();
        done.insert(node.to_owned());
    }
    let mut cycles = Vec::new();
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        visit(node, &edges, &mut Vec::new(), &mut done, &mut cycles);
    }
    assert!(cycles.is_empty(), "module cycles: {cycles:#?}");
}

/// The device agent builds without the server (`--no-default-features`): what it
/// compiles — the agent, the device wire types, signing and the domain rules — uses
/// nothing of the server, and the server's database, storage, template and web
/// dependencies are optional, switched on by the `server` feature alone.
#[test]
fn the_device_side_needs_nothing_of_the_server() {
    let server_only = [
        "actix-web",
        "argon2",
        "diesel",
        "diesel_migrations",
        "libsqlite3-sys",
        "pq-sys",
        "openssl-sys",
        "object_store",
        "tera",
        "prometheus",
        "governor",
    ];
    let manifest: toml::Table = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let dependencies = manifest["dependencies"].as_table().unwrap();
    let server_feature: Vec<&str> = manifest["features"]["server"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut found = Vec::new();
    for name in server_only {
        let optional = dependencies[name].get("optional").and_then(toml::Value::as_bool) == Some(true);
        if !optional || !server_feature.contains(&format!("dep:{name}").as_str()) {
            found.push(format!("{name} is not an optional dependency of the `server` feature"));
        }
    }
    let mut files = source_files(&src().join("client").join("agent"));
    files.extend([src().join("api").join("device.rs"), src().join("signing.rs")]);
    // The domain modules that only the server builds (`#[cfg(feature = "server")]`
    // in `domain/mod.rs`) may name the server's ids.
    let domain = std::fs::read_to_string(src().join("domain").join("mod.rs")).unwrap();
    let lines: Vec<&str> = domain.lines().collect();
    let server_only_modules: Vec<String> = lines
        .windows(2)
        .filter(|w| w[0].trim() == "#[cfg(feature = \"server\")]")
        .filter_map(|w| {
            w[1].trim()
                .strip_prefix("pub mod ")?
                .strip_suffix(';')
                .map(str::to_owned)
        })
        .collect();
    assert!(
        server_only_modules.contains(&"caller".to_owned()),
        "{server_only_modules:?}"
    );
    files.extend(files_under("domain").into_iter().filter(|f| {
        let stem = f.file_stem().unwrap().to_string_lossy();
        !server_only_modules.iter().any(|m| *m == stem)
    }));
    files.push(src().join("bin").join("patchwarden-agent.rs"));
    assert!(files.len() > 20, "{files:?}");
    let forbidden = [
        "crate::db",
        "crate::services",
        "crate::storage",
        "crate::templates",
        "crate::config",
        "crate::state",
        "crate::ids",
        "crate::http",
        "patchwarden::services",
        "patchwarden::db",
        "actix_web",
        "diesel",
        "tera::",
        "object_store",
    ];
    for file in files {
        let code = code_of(&file);
        for word in forbidden {
            if code.contains(word) {
                found.push(format!("{} uses {word}", file.display()));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}
