//! The vocabulary of grants shared by the file as written ([`crate::model`]) and the plan
//! ([`crate::plan`]): how a directory may be used, whether host commands run confined, and
//! which directory a grant named.

/// How a step may use a granted directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FsAccess {
    /// Read only.
    Read,
    /// Read and write.
    Write,
}

/// Whether granted host commands must run confined (top-level `exec-confinement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecConfinement {
    /// Confine them with bubblewrap; refuse the pipeline where that is not possible.
    Required,
    /// Confine them where bubblewrap works; otherwise run them with a clean
    /// environment only (the default).
    #[default]
    Preferred,
    /// Never confine them.
    Off,
}

/// Which directory a grant named when the pipeline was checked: its device and inode
/// numbers (unix `st_dev` and `st_ino`; both 0 elsewhere). When a step starts, the engine
/// compares them with the directory it opens, so that a directory replaced since the check
/// (by a symbolic link or another directory) is refused rather than used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DirIdentity {
    /// The device the directory is on.
    pub dev: u64,
    /// Its inode number on that device.
    pub ino: u64,
}

impl DirIdentity {
    /// The identity of the file `metadata` describes (get it with
    /// [`std::fs::symlink_metadata`] so that a link is not followed).
    pub fn of(metadata: &std::fs::Metadata) -> DirIdentity {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            DirIdentity {
                dev: metadata.dev(),
                ino: metadata.ino(),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = metadata;
            DirIdentity::default()
        }
    }
}

/// One authority a step may reach over HTTP (`grants.net`): a host name or IP
/// literal, and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NetGrant {
    /// Lower-case host name, or IP literal without brackets.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl NetGrant {
    /// `host:port` or `[v6]:port`; `None` when it is neither.
    pub fn parse(text: &str) -> Option<NetGrant> {
        let (host, port) = text.rsplit_once(':')?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner.strip_suffix(']')?,
            None if host.contains(':') => return None,
            None => host,
        };
        let port = port.parse().ok()?;
        let valid = !host.is_empty()
            && !host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "/@?#[]".contains(c));
        valid.then(|| NetGrant {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl std::fmt::Display for NetGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_grants_are_host_and_port() {
        assert_eq!(
            NetGrant::parse("Registry.Example.com:443"),
            Some(NetGrant {
                host: "registry.example.com".into(),
                port: 443
            })
        );
        let v6 = NetGrant::parse("[::1]:5000").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 5000));
        assert_eq!(v6.to_string(), "[::1]:5000");
        for bad in [
            "nohost",
            ":80",
            "host:",
            "host:99999",
            "::1:80",
            "a b:80",
            "h/x:80",
        ] {
            assert_eq!(NetGrant::parse(bad), None, "{bad}");
        }
    }
}
