//! From the parsed YAML to a checked [`AppSpec`]: ordered services, legacy conversion,
//! dependency checks (unknown names, cycles), and positions for every error.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::{AddSpec, AppSpec, RawSpec, ServiceSpec, SpecError};

/// The `services` map, kept in file order.
#[derive(Debug, Default)]
pub(super) struct OrderedServices(pub Vec<ServiceSpec>);

/// Service names: letters, digits, `.`, `_`, `-`, 1-64 characters.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

impl<'de> Deserialize<'de> for OrderedServices {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedServices;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of service name to service")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedServices, A::Error> {
                let mut out: Vec<ServiceSpec> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if !valid_name(&name) {
                        return Err(de::Error::custom(format_args!(
                            "bad service name {name:?}: valid names are 1-64 of letters, digits, '.', '_', '-'"
                        )));
                    }
                    if out.iter().any(|s| s.name == name) {
                        return Err(de::Error::custom(format_args!(
                            "service {name:?} is defined twice"
                        )));
                    }
                    let mut svc: ServiceSpec = map.next_value()?;
                    svc.name = name;
                    out.push(svc);
                }
                Ok(OrderedServices(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A parser error with its position; serde_yaml's text already names the key path.
pub(super) fn from_yaml(path: &Path, e: &serde_yaml::Error) -> SpecError {
    let mut message = e.to_string();
    let (line, column) = match e.location() {
        Some(l) => {
            let suffix = format!(" at line {} column {}", l.line(), l.column());
            if let Some(i) = message.find(&suffix) {
                message.replace_range(i..i + suffix.len(), "");
            }
            (l.line(), l.column())
        }
        None => (1, 1),
    };
    SpecError::Invalid {
        path: path.into(),
        line,
        column,
        message,
    }
}

/// Finds the line and column of a key path in block-style YAML (`["services", "web",
/// "depends_on"]`); falls back to the deepest part found, then to 1:1.
pub(super) fn locate(text: &str, keys: &[&str]) -> (usize, usize) {
    let mut found = (1, 1);
    let mut min_indent: i64 = -1;
    let mut lines = text.lines().enumerate();
    'keys: for key in keys {
        for (n, line) in lines.by_ref() {
            let body = line.trim_start();
            let indent = (line.len() - body.len()) as i64;
            if body.is_empty() || body.starts_with('#') {
                continue;
            }
            if indent <= min_indent {
                break 'keys;
            }
            let body = body.trim_start_matches("- ");
            let k = body
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches(|c| c == '"' || c == '\'');
            if k == *key
                && body[k.len()..]
                    .trim_start_matches(['"', '\''])
                    .starts_with(':')
            {
                found = (n + 1, indent as usize + 1);
                min_indent = indent;
                continue 'keys;
            }
        }
        break;
    }
    found
}

fn invalid(path: &Path, text: &str, keys: &[&str], message: String) -> SpecError {
    let (line, column) = locate(text, keys);
    SpecError::Invalid {
        path: path.into(),
        line,
        column,
        message,
    }
}

fn parse_add(line: &str, spec_dir: &Path) -> Result<AddSpec, String> {
    let parts = shlex::split(line).unwrap_or_default();
    match parts.as_slice() {
        [src, dest] => {
            let src = PathBuf::from(src);
            Ok(AddSpec {
                src: if src.is_absolute() { src } else { spec_dir.join(src) },
                dest: PathBuf::from(dest),
                into_dir: dest.ends_with('/'),
            })
        }
        _ => Err(format!("add line {line:?}: valid form is `SOURCE DEST` (SOURCE relative to the spec's directory)")),
    }
}

/// A dependency cycle through `start`, as names, if there is one.
fn find_cycle(services: &[ServiceSpec]) -> Option<Vec<String>> {
    let index: BTreeMap<&str, usize> = services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut mark = vec![0u8; services.len()];
    fn dfs(
        i: usize,
        s: &[ServiceSpec],
        idx: &BTreeMap<&str, usize>,
        mark: &mut [u8],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        mark[i] = 1;
        stack.push(i);
        for dep in &s[i].depends_on {
            let Some(&j) = idx.get(dep.as_str()) else {
                continue;
            };
            if mark[j] == 1 {
                let from = stack.iter().position(|&k| k == j).unwrap_or(0);
                let mut cycle: Vec<String> =
                    stack[from..].iter().map(|&k| s[k].name.clone()).collect();
                cycle.push(s[j].name.clone());
                return Some(cycle);
            }
            if mark[j] == 0 {
                if let Some(c) = dfs(j, s, idx, mark, stack) {
                    return Some(c);
                }
            }
        }
        stack.pop();
        mark[i] = 2;
        None
    }
    for i in 0..services.len() {
        if mark[i] == 0 {
            if let Some(c) = dfs(i, services, &index, &mut mark, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

/// Builds the checked spec.
pub(super) fn build(raw: RawSpec, text: &str, path: &Path) -> Result<AppSpec, SpecError> {
    let spec_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let ports: Vec<u16> = raw.service.iter().map(|p| p.port.0).collect();

    let mut adds = Vec::new();
    for line in &raw.add {
        adds.push(
            parse_add(line, &spec_dir)
                .map_err(|m| invalid(path, text, &["add"], format!("add: {m}")))?,
        );
    }

    let mut services: Vec<ServiceSpec> = Vec::new();
    for (i, cmd) in raw.entry.into_iter().enumerate() {
        let after = services.last().map(|s| s.name.clone());
        services.push(ServiceSpec::from_entry(
            format!("entry-{}", i + 1),
            cmd,
            after,
        ));
    }
    for svc in raw.services.0 {
        if services.iter().any(|s| s.name == svc.name) {
            return Err(invalid(
                path,
                text,
                &["services", &svc.name],
                format!(
                    "services.{}: the name is taken by an `entry` line; valid names avoid entry-N",
                    svc.name
                ),
            ));
        }
        services.push(svc);
    }

    let names: HashSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
    for s in &services {
        for dep in &s.depends_on {
            if !names.contains(dep.as_str()) {
                let mut valid: Vec<&str> = names.iter().copied().filter(|n| *n != s.name).collect();
                valid.sort_unstable();
                return Err(invalid(
                    path,
                    text,
                    &["services", &s.name, "depends_on"],
                    format!(
                        "services.{}.depends_on: unknown service {dep:?}; valid are: {}",
                        s.name,
                        valid.join(", ")
                    ),
                ));
            }
        }
        if let Some(h) = &s.health {
            h.probe(&ports).map_err(|m| {
                invalid(
                    path,
                    text,
                    &["services", &s.name, "health"],
                    format!("services.{}.health: {m}", s.name),
                )
            })?;
        }
    }
    if let Some(cycle) = find_cycle(&services) {
        return Err(invalid(
            path,
            text,
            &["services", &cycle[0], "depends_on"],
            format!(
                "services.{}.depends_on: dependency cycle {}; valid dependencies form no cycle",
                cycle[0],
                cycle.join(" -> ")
            ),
        ));
    }
    let mut cron_names = HashSet::new();
    for c in &raw.cron {
        if !valid_name(&c.name) || !cron_names.insert(c.name.as_str()) {
            return Err(invalid(path, text, &["cron"], format!("cron: job name {:?} is invalid or repeated; valid names are unique, 1-64 of letters, digits, '.', '_', '-'", c.name)));
        }
    }

    Ok(AppSpec {
        path: path.into(),
        require: raw.require,
        ports,
        adds,
        services,
        cron: raw.cron,
        debug: raw.debug,
        env: raw.env,
        health_port: raw.health_port.map(|p| p.0),
    })
}
