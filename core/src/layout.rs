//! Where everything lives under the root directory (docs/config.md, "The root directory").

use std::path::{Path, PathBuf};

/// Root used when neither `--root` nor `$GGCORE_ROOT` is given.
pub const DEFAULT_ROOT: &str = "greengrass";
pub const ROOT_ENV: &str = "GGCORE_ROOT";

/// Resolves the root: `--root`, else `$GGCORE_ROOT`, else `./greengrass`; made absolute.
pub fn resolve_root(flag: Option<&Path>) -> PathBuf {
    let chosen = match flag {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os(ROOT_ENV) {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => PathBuf::from(DEFAULT_ROOT),
        },
    };
    if chosen.is_absolute() {
        chosen
    } else {
        std::env::current_dir().map(|d| d.join(&chosen)).unwrap_or(chosen)
    }
}

/// Every path the core reads or writes, derived from the root and `writeDirectory`.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
    /// `writeDirectory` when set, else `ROOT/ggc`: holds `deployment/` and `var/`.
    pub write_root: PathBuf,
}

impl Layout {
    pub fn new(root: PathBuf, write_directory: Option<PathBuf>) -> Self {
        let write_root = write_directory.unwrap_or_else(|| root.join("ggc"));
        Self { root, write_root }
    }

    /// A root is empty (and gets the demo) when it has none of `config/`, `certs/`, `ggc/`.
    pub fn is_empty_root(root: &Path) -> bool {
        ["config", "certs", "ggc"].iter().all(|d| !root.join(d).exists())
    }

    pub fn config_file(&self) -> PathBuf {
        self.root.join("config/config.json")
    }
    pub fn certs_dir(&self) -> PathBuf {
        self.root.join("certs")
    }
    pub fn group_ca_cert(&self) -> PathBuf {
        self.root.join("certs/group-ca.pem")
    }
    pub fn group_ca_key(&self) -> PathBuf {
        self.root.join("certs/group-ca.key")
    }
    pub fn device_ca_cert(&self) -> PathBuf {
        self.root.join("certs/device-ca.pem")
    }
    pub fn device_ca_key(&self) -> PathBuf {
        self.root.join("certs/device-ca.key")
    }
    pub fn devices_certs_dir(&self) -> PathBuf {
        self.root.join("certs/devices")
    }
    pub fn socket_dir(&self) -> PathBuf {
        self.root.join("ggc/socket")
    }
    pub fn admin_socket(&self) -> PathBuf {
        self.socket_dir().join("admin.sock")
    }
    pub fn deployment_dir(&self) -> PathBuf {
        self.write_root.join("deployment")
    }
    pub fn group_file(&self) -> PathBuf {
        self.deployment_dir().join("group/group.json")
    }
    pub fn lambda_dir(&self) -> PathBuf {
        self.deployment_dir().join("lambda")
    }
    pub fn staged_dir(&self) -> PathBuf {
        self.deployment_dir().join("staged")
    }
    pub fn var_dir(&self) -> PathBuf {
        self.write_root.join("var")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.var_dir().join("state")
    }
    pub fn store_dir(&self) -> PathBuf {
        self.state_dir().join("db")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.state_dir().join("ggcore.lock")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.state_dir().join("server/server.crt")
    }
    pub fn server_key(&self) -> PathBuf {
        self.state_dir().join("server/server.key")
    }
    pub fn system_log_dir(&self) -> PathBuf {
        self.var_dir().join("log/system")
    }
    pub fn user_log_dir(&self) -> PathBuf {
        self.var_dir().join("log/user")
    }
}
