//! The server's settings, read from a zoo.cfg-style file (`key=value` lines, `#`
//! comments) with ZooKeeper's names where they apply.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What went wrong reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `key=value`, or a value is out of range.
    #[error("{path}:{line}: {msg}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
}

/// The server's settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// `tickTime` (ms): the unit of session timeouts and of the expiry check.
    pub tick_time_ms: u32,
    /// `minSessionTimeout` (ms; default 2 ticks).
    pub min_session_timeout_ms: Option<u32>,
    /// `maxSessionTimeout` (ms; default 20 ticks).
    pub max_session_timeout_ms: Option<u32>,
    /// `jute.maxbuffer`: the largest frame accepted.
    pub max_frame: usize,
    /// `maxClientCnxns`: connections per client address (0: no limit).
    pub max_client_cnxns: usize,
    /// `maxOutstandingRequests`: requests of one connection in flight (its reading
    /// stops beyond it).
    pub max_outstanding: usize,
    /// `globalOutstandingLimit`: requests of all connections in flight; beyond it no
    /// connection's requests are read until some are answered (ZooKeeper's
    /// throttling; default 1000 as there).
    pub global_outstanding: usize,
    /// `superDigest` (`super:<base64 sha1>`), as
    /// `zookeeper.DigestAuthenticationProvider.superDigest`.
    pub super_digest: Option<String>,
    /// `4lw.commands.whitelist`: the four-letter words answered (`*`: all).
    pub four_letter_words: Vec<String>,
    /// `snapCount`: a snapshot every this many txns.
    pub snap_count: u64,
    /// `preAllocSize` (KiB): the log's segment files are created this large (zeros),
    /// so appends do not grow them; 0: segments are not preallocated and grow as
    /// written. `None`: 64 MiB, preallocated.
    pub pre_alloc_kib: Option<u64>,
    /// `extendedTypesEnabled`: TTL nodes (ZooKeeper's
    /// `zookeeper.extendedTypesEnabled`; on by default here).
    pub extended_types: bool,
    /// `containerCheckInterval` / TTL check period (ms).
    pub container_check_ms: u64,
    /// `--http-port`: `/livez`, `/ready`, `/metrics`.
    pub http_listen: Option<SocketAddr>,
    /// `--tls-cert` / `--tls-key`: clients connect over TLS (PEM files: the
    /// certificate chain, then the private key).
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 2181)),
            tick_time_ms: 3000,
            min_session_timeout_ms: None,
            max_session_timeout_ms: None,
            max_frame: crate::proto::DEFAULT_MAX_FRAME,
            max_client_cnxns: 60,
            max_outstanding: 1000,
            global_outstanding: 1000,
            super_digest: None,
            four_letter_words: vec!["srvr".into(), "ruok".into(), "mntr".into(), "isro".into()],
            snap_count: 100_000,
            pre_alloc_kib: None,
            extended_types: true,
            container_check_ms: 60_000,
            http_listen: None,
            tls: None,
        }
    }
}

impl ServerConfig {
    /// The negotiated bounds of session timeouts (ms).
    pub fn session_bounds(&self) -> (i32, i32) {
        let tick = i64::from(self.tick_time_ms);
        let min = self.min_session_timeout_ms.map_or(2 * tick, i64::from);
        let max = self.max_session_timeout_ms.map_or(20 * tick, i64::from).max(min);
        (i32::try_from(min).unwrap_or(i32::MAX), i32::try_from(max).unwrap_or(i32::MAX))
    }

    /// Negotiates a session timeout as ZooKeeper does (clamped into the bounds).
    pub fn negotiate(&self, asked: i32) -> i32 {
        let (min, max) = self.session_bounds();
        asked.clamp(min, max)
    }

    /// The tick as a duration.
    pub fn tick(&self) -> Duration {
        Duration::from_millis(u64::from(self.tick_time_ms.max(1)))
    }

    /// Whether the four-letter word `w` is allowed.
    pub fn allows(&self, w: &str) -> bool {
        self.four_letter_words.iter().any(|x| x == "*" || x == w)
    }

    /// The members of a replicated service for node `id`: from `peers` (the `--peers`
    /// list) or else from the `server.N` lines of the config file `file`; they must
    /// include `id`. Unless `port_given`, the listen port becomes `id`'s client port.
    pub fn replica_peers(
        &mut self,
        id: u64,
        peers: Option<&str>,
        file: Option<&Path>,
        port_given: bool,
    ) -> Result<std::collections::BTreeMap<u64, crate::replica::PeerAddr>, String> {
        let peers = match (peers, file) {
            (Some(p), _) => crate::replica::parse_peers(p)?,
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|e| e.to_string())
                .and_then(|t| crate::replica::peers_from_config(&t))
                .map_err(|e| format!("{}: {e}", f.display()))?,
            (None, None) => return Err("--id needs --peers (or server.N lines in --config)".into()),
        };
        let me = peers
            .get(&id)
            .ok_or_else(|| format!("the members ({:?}) do not include --id {id}", peers.keys()))?;
        if !port_given {
            self.listen.set_port(me.client_port);
        }
        Ok(peers)
    }

    /// Applies the settings of a zoo.cfg-style file over `self`. Unknown keys
    /// ZooKeeper has (dataDir, clientPort, initLimit, ...) are accepted: clientPort and
    /// clientPortAddress set the listen address, the others are ignored.
    pub fn apply_file(&mut self, path: &Path) -> Result<Vec<String>, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
        self.apply_text(path, &text)
    }

    /// As [`ServerConfig::apply_file`], on the file's text. Returns a warning for each
    /// setting it does not know (ignored, so that a zoo.cfg with more settings works).
    pub fn apply_text(&mut self, path: &Path, text: &str) -> Result<Vec<String>, ConfigError> {
        let mut warnings = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad =
                |msg: String| ConfigError::Invalid { path: path.to_path_buf(), line: i + 1, msg };
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| bad(format!("expected key=value, found {line:?}")))?;
            let (k, v) = (k.trim(), v.trim());
            let num = |v: &str| -> Result<u64, ConfigError> {
                v.parse::<u64>()
                    .map_err(|_| bad(format!("{k}: {v:?} is not a non-negative integer")))
            };
            let u32v = |v: &str| -> Result<u32, ConfigError> {
                u32::try_from(num(v)?).map_err(|_| bad(format!("{k}: {v} is too large")))
            };
            match k {
                "tickTime" => {
                    self.tick_time_ms = u32v(v)?;
                    if self.tick_time_ms == 0 {
                        return Err(bad("tickTime must be positive".into()));
                    }
                }
                "minSessionTimeout" => self.min_session_timeout_ms = Some(u32v(v)?),
                "maxSessionTimeout" => self.max_session_timeout_ms = Some(u32v(v)?),
                "jute.maxbuffer" => {
                    let n = num(v)?;
                    if !(1024..=(1 << 30)).contains(&n) {
                        return Err(bad(format!("jute.maxbuffer {n} out of range 1024..=2^30")));
                    }
                    self.max_frame = usize::try_from(n).unwrap_or(usize::MAX);
                }
                "maxClientCnxns" => {
                    self.max_client_cnxns = usize::try_from(num(v)?).unwrap_or(usize::MAX)
                }
                "maxOutstandingRequests" => {
                    self.max_outstanding = usize::try_from(num(v)?).unwrap_or(usize::MAX).max(1)
                }
                "globalOutstandingLimit" | "zookeeper.globalOutstandingLimit" => {
                    let n = usize::try_from(num(v)?).unwrap_or(usize::MAX);
                    // tokio's semaphores hold at most usize::MAX >> 3 permits.
                    self.global_outstanding = n.clamp(1, 1 << 30);
                }
                "superDigest" | "zookeeper.DigestAuthenticationProvider.superDigest" => {
                    if !v.contains(':') {
                        return Err(bad("superDigest must be user:base64digest".into()));
                    }
                    self.super_digest = Some(v.to_string());
                }
                "4lw.commands.whitelist" => {
                    self.four_letter_words = v
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect();
                }
                "snapCount" => self.snap_count = num(v)?.max(2),
                "preAllocSize" | "zookeeper.preAllocSize" => {
                    let n = num(v)?;
                    if n != 0 && !(4..=(1 << 20)).contains(&n) {
                        return Err(bad(format!(
                            "preAllocSize {n} out of range 4..=1048576 (KiB), or 0"
                        )));
                    }
                    self.pre_alloc_kib = Some(n);
                }
                "extendedTypesEnabled" | "zookeeper.extendedTypesEnabled" => {
                    self.extended_types = match v {
                        "true" => true,
                        "false" => false,
                        _ => return Err(bad(format!("{k}: expected true or false, found {v:?}"))),
                    }
                }
                "containerCheckInterval" => self.container_check_ms = num(v)?.max(10),
                "clientPort" => {
                    let port = u16::try_from(num(v)?).map_err(|_| bad(format!("bad port {v}")))?;
                    self.listen.set_port(port);
                }
                "clientPortAddress" => {
                    let ip = v.parse().map_err(|_| bad(format!("bad address {v:?}")))?;
                    self.listen.set_ip(ip);
                }
                // ZooKeeper settings that mean nothing here (one node, one directory).
                "dataDir"
                | "dataLogDir"
                | "initLimit"
                | "syncLimit"
                | "autopurge.snapRetainCount"
                | "autopurge.purgeInterval"
                | "admin.enableServer"
                | "admin.serverPort"
                | "standaloneEnabled"
                | "reconfigEnabled"
                | "forceSync"
                | "metricsProvider.className"
                | "metricsProvider.httpPort" => {}
                _ if k.starts_with("server.") => {}
                _ => warnings.push(format!(
                    "{}:{}: unknown setting {k:?} ignored",
                    path.display(),
                    i + 1
                )),
            }
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_peers_come_from_the_list_or_the_file_and_set_the_client_port() {
        let mut c = ServerConfig::default();
        let list = "1=127.0.0.1:24001:24011,2=127.0.0.1:24002:24012";
        let peers = c.replica_peers(2, Some(list), None, false).unwrap();
        assert_eq!(peers.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(c.listen.port(), 24012);
        c.listen.set_port(1);
        c.replica_peers(1, Some(list), None, true).unwrap();
        assert_eq!(c.listen.port(), 1, "an explicit --port stays");
        let e = c.replica_peers(3, Some(list), None, false).unwrap_err();
        assert!(e.contains("do not include --id 3"), "{e}");
        assert!(c.replica_peers(1, None, None, false).unwrap_err().contains("--peers"));
        let dir = std::env::temp_dir().join(format!("kk-replica-peers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("zoo.cfg");
        std::fs::write(&f, "tickTime=2000\nserver.7=127.0.0.1:24007:24017\n").unwrap();
        let peers = c.replica_peers(7, None, Some(&f), false).unwrap();
        assert_eq!((peers.len(), c.listen.port()), (1, 24017));
        let missing = dir.join("missing.cfg");
        let e = c.replica_peers(7, None, Some(&missing), false).unwrap_err();
        assert!(e.contains("missing.cfg"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn zoo_cfg_names() {
        let mut c = ServerConfig::default();
        c.apply_text(
            Path::new("zoo.cfg"),
            "# comment\ntickTime=2000\nmaxSessionTimeout=10000\njute.maxbuffer=4096\n\
             4lw.commands.whitelist=ruok, stat\nclientPort=22001\ndataDir=/x\nsnapCount=10\n",
        )
        .unwrap();
        assert_eq!(c.session_bounds(), (4000, 10000));
        assert_eq!(c.negotiate(1), 4000);
        assert_eq!(c.negotiate(30_000), 10000);
        assert_eq!(c.max_frame, 4096);
        assert!(c.allows("stat") && !c.allows("dump"));
        assert_eq!(c.listen.port(), 22001);
        assert_eq!(c.snap_count, 10);
        assert_eq!(c.pre_alloc_kib, None);
        assert_eq!((c.max_outstanding, c.global_outstanding), (1000, 1000));
        c.apply_text(Path::new("zoo.cfg"), "globalOutstandingLimit=5\nmaxOutstandingRequests=3\n")
            .unwrap();
        assert_eq!((c.max_outstanding, c.global_outstanding), (3, 5));
        c.apply_text(Path::new("zoo.cfg"), "preAllocSize=128\n").unwrap();
        assert_eq!(c.pre_alloc_kib, Some(128));
        assert!(c.apply_text(Path::new("zoo.cfg"), "preAllocSize=2\n").is_err());
        let w = c.apply_text(Path::new("zoo.cfg"), "\nbogus=1\n").unwrap();
        assert_eq!(w, vec!["zoo.cfg:2: unknown setting \"bogus\" ignored".to_string()]);
        let e = c.apply_text(Path::new("zoo.cfg"), "\ntickTime=0\n").unwrap_err();
        assert!(e.to_string().contains("zoo.cfg:2"), "{e}");
        assert!(c.apply_text(Path::new("z"), "tickTime=x").is_err());
    }
}
