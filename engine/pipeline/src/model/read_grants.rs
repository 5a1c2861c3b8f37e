//! Reading a step's `grants:`: the directories (`fs`), host commands (`exec`), variables
//! (`env`), secrets, signing keys and hosts (`net`) it may use.

use std::collections::HashMap;
use std::sync::Arc;

use crate::diag::{Location, Note, Span};
use crate::grants::FsAccess;
use crate::yaml::{Node, NodeKind, Scalar};

use super::reader::Reader;
use super::types::{EnvGrantDecl, ExecGrantDecl, FsGrantDecl, GrantsDecl};
use super::values::is_env_name;

/// A step's `grants:`.
pub(super) fn read_grants(reader: &mut Reader, node: &Node, place: &str) -> GrantsDecl {
    let mut grants = GrantsDecl::default();
    let Some(entries) = reader.mapping(node, "`grants`") else {
        return grants;
    };
    reader.unknown_keys(
        entries,
        &["fs", "env", "net", "exec", "secrets", "keys"],
        &format!("in the `grants` of {place}"),
    );
    for entry in entries {
        let key = entry.key_text();
        match key {
            "fs" => grants.fs = read_fs_grants(reader, &entry.value, place),
            "env" => grants.env = read_env_grants(reader, &entry.value),
            "exec" => {
                grants.exec = read_exec_grants(reader, &entry.value, place);
                grants.exec_span = Some(entry.key.span);
            }
            "secrets" => {
                grants.secrets = reader.strings(&entry.value, "`grants.secrets`", false);
            }
            "keys" => {
                grants.keys = reader.strings(&entry.value, "`grants.keys`", false);
            }
            "net" => {
                let hosts = reader.strings(&entry.value, "`grants.net`", false);
                for (host, span) in hosts {
                    match crate::grants::NetGrant::parse(&host) {
                        Some(grant) => grants.net.push((grant, span)),
                        None => {
                            reader
                                .error(span, format!("invalid host `{host}` in `grants.net`"))
                                .help = Some(
                                "write `host:port`, e.g. `example.com:443` (an IPv6 address in brackets: `[::1]:5000`)"
                                    .into(),
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }
    grants
}

/// `exec: [cargo, /usr/bin/make, { command: cargo, reads: [~/.rustup] }]`.
fn read_exec_grants(reader: &mut Reader, node: &Node, place: &str) -> Vec<ExecGrantDecl> {
    let NodeKind::Sequence(items) = &node.kind else {
        reader
            .error(
                node.span,
                format!("`grants.exec` must be a list, found {}", node.type_name()),
            )
            .help = Some("write `exec: [cargo, make]`".into());
        return Vec::new();
    };
    let mut out: Vec<ExecGrantDecl> = Vec::new();
    // The span of the first grant of each command name (the part after the last `/`).
    let mut granted: HashMap<String, Span> = HashMap::new();
    for item in items {
        let grant = if let NodeKind::Mapping(fields) = &item.kind {
            reader.unknown_keys(
                fields,
                &["command", "reads"],
                &format!("in an `exec` grant of {place}"),
            );
            let find = |key: &str| fields.iter().find(|e| e.key_text() == key);
            let Some(command) = find("command") else {
                reader.error(item.span, "an `exec` grant needs a `command`");
                continue;
            };
            let Some(name) = reader.string(&command.value, "`command`") else {
                continue;
            };
            let reads = match find("reads") {
                Some(r) => reader.strings(&r.value, "`reads`", false),
                None => Vec::new(),
            };
            ExecGrantDecl {
                command: name,
                span: command.value.span,
                reads,
            }
        } else {
            let Some(name) = reader.string(item, "each `grants.exec` entry") else {
                continue;
            };
            ExecGrantDecl {
                command: name,
                span: item.span,
                reads: Vec::new(),
            }
        };
        if grant.command.is_empty() || grant.command.contains(char::is_whitespace) {
            reader
                .error(
                    grant.span,
                    format!("invalid command `{}` in `grants.exec`", grant.command),
                )
                .help = Some("name one command, without arguments".into());
            continue;
        }
        let name = grant
            .command
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        if let Some(&first) = granted.get(&name) {
            let file = Arc::clone(reader.file);
            reader
                .error(grant.span, format!("command `{name}` is granted twice"))
                .notes
                .push(Note {
                    location: Some(Location { file, span: first }),
                    message: "first granted here".into(),
                });
            continue;
        }
        granted.insert(name, grant.span);
        out.push(grant);
    }
    out
}

/// `env: [HOME, CARGO_HOME]` (the host's values) or `env: { RUSTFLAGS: "-Dwarnings" }`.
fn read_env_grants(reader: &mut Reader, node: &Node) -> Vec<EnvGrantDecl> {
    let mut out = Vec::new();
    if let NodeKind::Mapping(entries) = &node.kind {
        for entry in entries {
            let mut secret = None;
            let value = match &entry.value.kind {
                NodeKind::Scalar {
                    value: Scalar::String(s),
                    ..
                } => Some(s.clone()),
                NodeKind::Scalar {
                    value: Scalar::Null,
                    ..
                } => None,
                NodeKind::Scalar { text, .. } => Some(text.clone()),
                NodeKind::Mapping(fields)
                    if fields.len() == 1 && fields[0].key_text() == "secret" =>
                {
                    secret = reader
                        .string(&fields[0].value, "`secret`")
                        .map(|name| (name, fields[0].value.span));
                    None
                }
                _ => {
                    reader.error(
                        entry.value.span,
                        format!(
                            "the value of `{}` must be text or `{{ secret: NAME }}`, found {}",
                            entry.key_text(),
                            entry.value.type_name()
                        ),
                    );
                    continue;
                }
            };
            out.push(EnvGrantDecl {
                name: entry.key_text().to_owned(),
                span: entry.key.span,
                value,
                secret,
            });
        }
    } else {
        for (name, span) in reader.strings(node, "`grants.env`", false) {
            out.push(EnvGrantDecl {
                name,
                span,
                value: None,
                secret: None,
            });
        }
    }
    out.retain(|grant| {
        let valid = is_env_name(&grant.name);
        if !valid {
            reader.error(
                grant.span,
                format!("invalid variable name `{}` in `grants.env`", grant.name),
            )
            .help = Some("names are letters, digits and `_`, not starting with a digit".into());
        } else if grant.name == "PATH" && grant.value.is_some() {
            reader.error(grant.span, "`PATH` cannot be set in `grants.env`")
                .help = Some(
                "commands run with the directories of the granted commands and the system's; grant `PATH` by name to pass the host's".into(),
            );
            return false;
        }
        valid
    });
    out
}

/// `fs: [{ path: ../dir, access: read, hash: false }]`.
fn read_fs_grants(reader: &mut Reader, node: &Node, place: &str) -> Vec<FsGrantDecl> {
    let NodeKind::Sequence(items) = &node.kind else {
        reader
            .error(
                node.span,
                format!("`grants.fs` must be a list, found {}", node.type_name()),
            )
            .help = Some("write `fs: [{ path: ../dir, access: read }]`".into());
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let Some(fields) = reader.mapping(item, "each `grants.fs` entry") else {
            continue;
        };
        reader.unknown_keys(
            fields,
            &["path", "access", "hash"],
            &format!("in an `fs` grant of {place}"),
        );
        let find = |key: &str| fields.iter().find(|e| e.key_text() == key);
        let path = match find("path") {
            Some(p) => reader.string(&p.value, "`path`").map(|s| (s, p.value.span)),
            None => {
                reader.error(item.span, "an `fs` grant needs a `path`");
                None
            }
        };
        let access = match find("access") {
            Some(a) => match a.value.as_str() {
                Some("read") => Some(FsAccess::Read),
                Some("write") => Some(FsAccess::Write),
                _ => {
                    reader
                        .error(a.value.span, "`access` must be `read` or `write`")
                        .help = Some("`write` allows reading too".into());
                    None
                }
            },
            None => {
                reader.error(
                    item.span,
                    "an `fs` grant needs `access: read` or `access: write`",
                );
                None
            }
        };
        let hash = match find("hash") {
            Some(h) => match &h.value.kind {
                NodeKind::Scalar {
                    value: Scalar::Bool(b),
                    ..
                } => *b,
                _ => {
                    reader.error(h.value.span, "`hash` must be `true` or `false`");
                    true
                }
            },
            None => true,
        };
        if let (Some((path, span)), Some(access)) = (path, access) {
            if path.is_empty() {
                reader.error(span, "`path` is empty");
                continue;
            }
            out.push(FsGrantDecl {
                path,
                span,
                access,
                hash,
            });
        }
    }
    out
}
