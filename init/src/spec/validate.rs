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

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    /// A mapping key.
    Key(String),
    /// A list index.
    Index(usize),
}

impl std::fmt::Display for Seg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seg::Key(k) => write!(f, ".{k}"),
            Seg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

fn path_text(segs: &[Seg]) -> String {
    let s: String = segs.iter().map(|s| s.to_string()).collect();
    s.strip_prefix('.').unwrap_or(&s).to_string()
}

/// A parser error with its position and full key path: the parser reports a bad value at
/// the mapping that holds it, so the key is looked up in the text to point at its line.
pub(super) fn from_yaml(
    path: &Path,
    text: &str,
    e: &serde_path_to_error::Error<serde_yaml::Error>,
) -> SpecError {
    let inner = e.inner();
    let segs: Vec<Seg> = e
        .path()
        .iter()
        .filter_map(|s| match s {
            serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
            serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
            _ => None,
        })
        .collect();
    let mut message = inner.to_string();
    let (mut line, mut column) = (1, 1);
    if let Some(l) = inner.location() {
        let suffix = format!(" at line {} column {}", l.line(), l.column());
        if let Some(i) = message.find(&suffix) {
            message.replace_range(i..i + suffix.len(), "");
        }
        (line, column) = (l.line(), l.column());
    }
    // Replace the parser's (shorter) key path with the full one.
    let full = path_text(&segs);
    if !full.is_empty() {
        for n in (0..=segs.len()).rev() {
            let prefix = format!("{}: ", path_text(&segs[..n]));
            if n > 0 && message.starts_with(&prefix) {
                message = format!("{full}: {}", &message[prefix.len()..]);
                break;
            }
        }
        if !message.starts_with(&format!("{full}: ")) {
            message = format!("{full}: {message}");
        }
        if let (true, pos) = locate(text, &segs) {
            (line, column) = pos;
        }
    }
    SpecError::Invalid {
        path: path.into(),
        line,
        column,
        message,
    }
}

/// Where a key path is in block-style YAML: (whether all of it was found, the line and
/// column of the deepest part found, else 1:1).
pub(super) fn locate(text: &str, segs: &[Seg]) -> (bool, (usize, usize)) {
    // (line number, indent, is a list dash, key of the body)
    let mut entries: Vec<(usize, i64, bool, String)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let body = raw.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let mut indent = (raw.len() - body.len()) as i64;
        let mut body = body;
        while let Some(rest) = body
            .strip_prefix("- ")
            .or(if body == "-" { Some("") } else { None })
        {
            entries.push((n + 1, indent, true, String::new()));
            let trimmed = rest.trim_start();
            indent += 1 + (rest.len() - trimmed.len()) as i64 + 1;
            body = trimmed;
        }
        if !body.is_empty() {
            let key = body
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches(|c| c == '"' || c == '\'');
            let is_key = body.contains(':');
            entries.push((
                n + 1,
                indent,
                false,
                if is_key {
                    key.to_string()
                } else {
                    String::new()
                },
            ));
        }
    }
    let mut found = (1, 1);
    let mut parent: i64 = -1;
    let mut pos = 0;
    'segs: for seg in segs {
        let mut child: Option<i64> = None;
        let mut count = 0;
        while pos < entries.len() {
            let (n, indent, dash, ref key) = entries[pos];
            pos += 1;
            let in_block =
                indent > parent || (dash && indent == parent && matches!(seg, Seg::Index(_)));
            if !in_block {
                return (false, found);
            }
            let level = *child.get_or_insert(indent);
            if indent != level {
                continue;
            }
            match seg {
                Seg::Key(k) if !dash && key == k => {
                    found = (n, indent as usize + 1);
                    parent = indent;
                    continue 'segs;
                }
                Seg::Index(i) if dash => {
                    if count == *i {
                        found = (n, indent as usize + 1);
                        parent = indent;
                        continue 'segs;
                    }
                    count += 1;
                }
                _ => {}
            }
        }
        return (false, found);
    }
    (true, found)
}

fn invalid(path: &Path, text: &str, keys: &[&str], message: String) -> SpecError {
    let segs: Vec<Seg> = keys.iter().map(|k| Seg::Key(k.to_string())).collect();
    let (_, (line, column)) = locate(text, &segs);
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

    let bad_env = |env: &BTreeMap<String, String>| {
        env.iter()
            .find(|(k, v)| k.is_empty() || k.contains(['=', '\0']) || v.contains('\0'))
            .map(|(k, _)| k.clone())
    };
    if let Some(k) = bad_env(&raw.env) {
        return Err(invalid(
            path,
            text,
            &["env"],
            format!("env: bad variable name {k:?}; valid names are non-empty, without '=' or NUL"),
        ));
    }
    for s in &services {
        if let Some(k) = bad_env(&s.env) {
            return Err(invalid(
                path,
                text,
                &["services", &s.name, "env"],
                format!("services.{}.env: bad variable name {k:?}; valid names are non-empty, without '=' or NUL", s.name),
            ));
        }
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

    if let Some(l) = &raw.login {
        l.check().map_err(|(keys, msg)| {
            let mut at = vec!["login"];
            at.extend(keys.iter().map(String::as_str));
            invalid(path, text, &at, msg)
        })?;
    }
    if let Some(s) = &raw.statsd {
        s.check()
            .map_err(|(key, msg)| invalid(path, text, &["statsd", key], msg))?;
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
        network: raw.network,
        login: raw.login,
        statsd: raw.statsd,
    })
}
