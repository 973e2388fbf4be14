//! The layering, checked over every source file (whole, but for unit-test modules)
//! so that code added later is held to it too: services, jobs and domain rules know
//! nothing of HTTP; handlers reach the database and storage only through services
//! and never use one another; the top-level modules of the library form no cycle;
//! no file of the library, the server binary, its command line or the agent imports
//! its way back to itself; and the capability folders of `services/` form a tree.

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

/// A file's whole code, without its unit-test modules and comments.
fn code_of(path: &Path) -> String {
    code_without_tests(&std::fs::read_to_string(path).unwrap())
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
    let cycles = cycles_of(&edges);
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

/// A file's code with comments and unit-test modules (`#[cfg(test)] mod … { … }`)
/// taken out, and nothing else: code after a test module is read too.
fn code_without_tests(text: &str) -> String {
    let mut code = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        code.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        if !trimmed.starts_with("mod ") {
            // A test-only item that is not a module: skip the attribute alone.
            rest = after;
            continue;
        }
        let Some(open) = after.find('{') else {
            rest = "";
            break;
        };
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    code.push_str(rest);
    code.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where a file sits in the module tree: `lib::services::fleet::poll`, the binary's
/// `bin::cli::keys`, the agent's `agent`.
fn module_path(file: &Path) -> String {
    let relative = file.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    match parts.first().map(String::as_str) {
        Some("lib") => "lib".to_owned(),
        Some("main") => "bin".to_owned(),
        Some("cli") => format!("bin::{}", parts.join("::")),
        Some("bin") => "agent".to_owned(),
        _ => format!("lib::{}", parts.join("::")),
    }
}

/// The paths `code` (of the file at `module`) names: `crate::a::b`, `super::c`,
/// `patchwarden::d`, with `use` groups spelled out, as absolute module paths.
fn named_paths(code: &str, module: &str) -> Vec<String> {
    let root = module.split("::").next().unwrap_or("lib").to_owned();
    let absolute = |path: &str| -> Option<String> {
        let mut parts = path.split("::");
        let first = parts.next()?;
        let rest: Vec<&str> = parts.collect();
        let base = match first {
            "crate" => root.clone(),
            "patchwarden" => "lib".to_owned(),
            "super" => {
                let mut up: Vec<&str> = module.split("::").collect();
                up.pop();
                let mut rest = rest.as_slice();
                while rest.first() == Some(&"super") {
                    up.pop();
                    rest = &rest[1..];
                }
                return Some(
                    [up.join("::")]
                        .into_iter()
                        .chain(rest.iter().map(|s| s.to_string()))
                        .collect::<Vec<_>>()
                        .join("::"),
                );
            }
            "self" => module.to_owned(),
            _ => return None,
        };
        Some(
            std::iter::once(base)
                .chain(rest.iter().map(|s| s.to_string()))
                .collect::<Vec<_>>()
                .join("::"),
        )
    };
    // Spells out `prefix::{a, b::{c, d}}` into `prefix::a`, `prefix::b::c`, …
    fn expand(path: &str) -> Vec<String> {
        let Some(open) = path.find('{') else {
            return vec![path.trim().trim_end_matches("::").to_owned()];
        };
        let prefix = &path[..open];
        let inner = &path[open + 1..path.rfind('}').unwrap_or(path.len())];
        let mut items = Vec::new();
        let (mut depth, mut start) = (0, 0);
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&inner[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        items.push(&inner[start..]);
        items
            .into_iter()
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .flat_map(|i| expand(&format!("{prefix}{}", i.split(" as ").next().unwrap_or(i))))
            .collect()
    }
    let mut found = Vec::new();
    // `use` declarations, groups and all.
    for statement in code.split(';') {
        let statement = statement.trim();
        let Some(tree) = statement
            .strip_prefix("pub use ")
            .or_else(|| statement.strip_prefix("pub(crate) use "))
            .or_else(|| statement.strip_prefix("use "))
            .or_else(|| statement.rsplit_once("\nuse ").map(|(_, t)| t))
            .or_else(|| statement.rsplit_once("\npub use ").map(|(_, t)| t))
        else {
            continue;
        };
        for path in expand(&tree.split_whitespace().collect::<String>()) {
            found.extend(absolute(&path));
        }
    }
    // Paths written out in the code.
    for start in ["crate::", "super::", "patchwarden::"] {
        for (i, _) in code.match_indices(start) {
            if i > 0 && code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = code[i..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            found.extend(absolute(path.trim_end_matches(':')));
        }
    }
    found
}

/// The file-level import graph of `files` (path → code): an edge from a file to
/// each file whose module it names, by the longest module path that names a file.
/// A file naming a module it lives inside (its folder's `mod.rs`, the crate root)
/// is not an edge: a folder's root is its face, and its children share what it
/// defines.
fn file_graph(files: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeMap<String, String> = files.keys().map(|f| (module_path(Path::new(f)), f.clone())).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, code) in files {
        let module = module_path(Path::new(file));
        let targets = edges.entry(file.clone()).or_default();
        for path in named_paths(code, &module) {
            let mut parts: Vec<&str> = path.split("::").collect();
            while !parts.is_empty() {
                let candidate = parts.join("::");
                if let Some(target) = modules.get(&candidate) {
                    let inside = module == candidate || module.starts_with(&format!("{candidate}::"));
                    if !inside {
                        targets.insert(target.clone());
                    }
                    break;
                }
                parts.pop();
            }
        }
    }
    edges
}

/// The cycles of a directed graph, each as the path that closes it.
fn cycles_of(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
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
        visit(node, edges, &mut Vec::new(), &mut done, &mut cycles);
    }
    cycles
}

/// The capability folders of `services/` and which of them each file's imports
/// reach: `services/fleet/poll.rs` is `fleet`, `services/watch.rs` is `watch`;
/// `services/mod.rs`, the root they share, is none.
fn capability_graph(file_edges: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, BTreeSet<String>> {
    let capability = |file: &str| -> Option<String> {
        let relative = Path::new(file).strip_prefix(src().join("services")).ok()?;
        let first = relative.components().next()?.as_os_str().to_string_lossy().into_owned();
        (first != "mod.rs").then(|| first.trim_end_matches(".rs").to_owned())
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, targets) in file_edges {
        let Some(a) = capability(from) else { continue };
        let entry = edges.entry(a.clone()).or_default();
        for to in targets {
            if let Some(b) = capability(to).filter(|b| *b != a) {
                entry.insert(b);
            }
        }
    }
    edges
}

/// Every source file of the crate (library, server binary and its command line,
/// agent binary), whole.
fn all_code() -> BTreeMap<String, String> {
    source_files(&src())
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f.to_string_lossy().into_owned(), code_without_tests(&text))
        })
        .collect()
}

#[test]
fn no_file_and_no_capability_of_services_imports_its_way_back_to_itself() {
    let files = all_code();
    assert!(
        files.keys().any(|f| f.contains("/cli/")) && files.keys().any(|f| f.ends_with("main.rs")),
        "the command line is read too"
    );
    let graph = file_graph(&files);
    let edges: usize = graph.values().map(BTreeSet::len).sum();
    assert!(edges > 300, "only {edges} imports between files were found");
    let cycles = cycles_of(&graph);
    assert!(cycles.is_empty(), "import cycles between files: {cycles:#?}");
    let capabilities = capability_graph(&graph);
    assert!(capabilities.len() > 12, "{capabilities:#?}");
    assert!(capabilities["effects"].contains("fleet"), "{capabilities:#?}");
    let cycles = cycles_of(&capabilities);
    assert!(
        cycles.is_empty(),
        "capability folders of services/ in a cycle: {cycles:#?}"
    );
}

#[test]
fn the_cycle_checks_fail_when_an_import_closes_a_cycle() {
    let files = all_code();
    // The fleet reaching back up to the effects that react to it: a cycle between
    // the two capabilities and between their files.
    let mut mutated = files.clone();
    let poll = src().join("services/fleet/poll.rs").to_string_lossy().into_owned();
    mutated
        .get_mut(&poll)
        .unwrap()
        .push_str("\nuse crate::services::effects::Effects;\n");
    let graph = file_graph(&mutated);
    let capability_cycles = cycles_of(&capability_graph(&graph));
    assert!(
        capability_cycles
            .iter()
            .any(|c| c.contains("effects") && c.contains("fleet")),
        "{capability_cycles:#?}"
    );
    // Two files that name each other, in a `use` group and in a written-out path.
    let mut mutated = files.clone();
    let text = src().join("domain/text.rs").to_string_lossy().into_owned();
    mutated
        .get_mut(&text)
        .unwrap()
        .push_str("\nuse crate::domain::{advisory::Advisory, version};\n");
    let file_cycles = cycles_of(&file_graph(&mutated));
    assert!(
        file_cycles
            .iter()
            .any(|c| c.contains("domain/text.rs") && c.contains("domain/advisory/mod.rs")),
        "{file_cycles:#?}"
    );
    // Code after a unit-test module is read.
    let code = code_without_tests(
        "fn a() {}\n#[cfg(test)]\nmod tests {\n    fn t() { let x = {1}; }\n}\nfn b() { crate::late::thing(); }\n",
    );
    assert!(code.contains("fn b()") && !code.contains("fn t()"), "{code}");
}
