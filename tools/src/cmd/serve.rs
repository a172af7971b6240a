//! `keeperkit serve`: the ZooKeeper-protocol server (crate `keeperkit-server`).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::anyhow;
use keeperkit_server::{Server, ServerConfig};

use crate::{CmdResult, ConvertArgs, Failure, Outcome};

/// `keeperkit serve ...`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    keeperkit serve /var/lib/keeperkit\n  \
    keeperkit serve /var/lib/keeperkit --port 2181 --config zoo.cfg\n  \
    keeperkit serve /var/lib/keeperkit --import /var/lib/zookeeper   (first start only)\n  \
    keeperkit serve /var/lib/kk1 --id 1 --peers 1=127.0.0.1:24001:24101,2=127.0.0.1:24002:24102,3=127.0.0.1:24003:24103 --bootstrap --http-port 24201\n  \
    keeperkit serve /var/lib/kk4 --id 4 --peers 4=127.0.0.1:24004:24104 --join 127.0.0.1:24201   (add a fourth member)\n\n\
    Replicated: every member runs with its own --id and the same --peers (or server.N=HOST:RAFT_PORT:CLIENT_PORT \
    lines in the config file, ZooKeeper's server.N=HOST:QUORUM_PORT:ELECTION_PORT;CLIENT_PORT too). \
    --bootstrap creates the cluster on the first start of its first members, once every member answers \
    that it has never seen a leader (given again later it is ignored). A member whose data directory \
    is empty while the cluster exists (or started without --bootstrap) is rebuilt from the leader: a \
    learner until it has caught up, then a voter again; it never votes before. --join \
    HOST:HTTP_PORT on an empty directory asks the cluster to add this node (a learner, then a \
    voter); `keeperkit members` lists, adds, removes, moves the leadership and checks the \
    quorum.\n\n\
    The config file takes zoo.cfg's names: tickTime, minSessionTimeout, maxSessionTimeout, \
    jute.maxbuffer, maxClientCnxns, globalOutstandingLimit, maxOutstandingRequests, \
    superDigest, 4lw.commands.whitelist, snapCount, preAllocSize, clientPort, \
    clientPortAddress, extendedTypesEnabled, containerCheckInterval. \
    Logs go to stderr (RUST_LOG=debug for more). SIGTERM or SIGINT stops the server \
    cleanly; sessions survive a restart within their timeout.")]
pub struct ServeArgs {
    /// The native data directory (created if missing).
    pub data_dir: PathBuf,
    /// Client port [default: 2181, or the config's clientPort].
    #[arg(long)]
    pub port: Option<u16>,
    /// Address to listen on [default: 127.0.0.1, or the config's clientPortAddress].
    #[arg(long)]
    pub bind: Option<IpAddr>,
    /// A zoo.cfg-style configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// On first start, import this ZooKeeper, ClickHouse Keeper or native directory.
    #[arg(long, value_name = "SRC")]
    pub import: Option<PathBuf>,
    /// Serve /livez, /ready, /status, /metrics (Prometheus) and, on a replica, /members
    /// over HTTP on this port.
    #[arg(long, value_name = "PORT")]
    pub http_port: Option<u16>,
    /// Clients connect over TLS with this certificate chain (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Run as member N (1..=255) of a replicated service.
    #[arg(long, value_name = "N", conflicts_with = "import")]
    pub id: Option<u64>,
    /// The members: ID=HOST:RAFT_PORT:CLIENT_PORT, comma-separated [default: the config's
    /// server.N lines].
    #[arg(long, value_name = "LIST", requires = "id")]
    pub peers: Option<String>,
    /// Create the cluster (first start of its first members only).
    #[arg(long, requires = "id")]
    pub bootstrap: bool,
    /// On an empty data directory: ask the cluster one of whose members answers HTTP
    /// at HOST:HTTP_PORT to add this node (a learner until caught up, then a voter).
    /// Ignored once the node is a member.
    #[arg(long, value_name = "HOST:HTTP_PORT", requires = "id", conflicts_with = "bootstrap")]
    pub join: Option<String>,
    /// Raft heartbeat interval (ms); an election starts after 6, 9 or 12 heartbeats
    /// without a leader (by the member's id, so that two never campaign in step).
    #[arg(long, value_name = "MS", default_value_t = 100, requires = "id")]
    pub heartbeat_ms: u64,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

fn is_empty_dir(p: &std::path::Path) -> bool {
    std::fs::read_dir(p).map(|mut d| d.next().is_none()).unwrap_or(false)
}

/// Runs the command.
pub fn run(args: &ServeArgs, out: &mut dyn Write) -> CmdResult {
    init_logging();
    let mut cfg = ServerConfig::default();
    if let Some(f) = &args.config {
        for w in cfg.apply_file(f).map_err(Failure::usage)? {
            tracing::warn!("{w}");
        }
    }
    let replica = match args.id {
        None => None,
        Some(id) => {
            let (peers, file) = (args.peers.as_deref(), args.config.as_deref());
            let peers = cfg
                .replica_peers(id, peers, file, args.port.is_some())
                .map_err(|e| Failure::usage(anyhow!("{e}")))?;
            Some((id, peers))
        }
    };
    let ip = args.bind.unwrap_or(cfg.listen.ip());
    let port = args.port.unwrap_or(cfg.listen.port());
    cfg.listen = SocketAddr::new(ip, port);
    if let (Some(c), Some(k)) = (&args.tls_cert, &args.tls_key) {
        cfg.tls = Some((c.clone(), k.clone()));
    }
    if let Some(p) = args.http_port {
        cfg.http_listen = Some(SocketAddr::new(ip, p));
    }
    if let Some(src) = &args.import {
        let dir = &args.data_dir;
        if !dir.exists() || is_empty_dir(dir) {
            if dir.exists() {
                std::fs::remove_dir(dir)?;
            }
            tracing::info!("importing {} into {}", src.display(), dir.display());
            let conv = ConvertArgs {
                src: src.clone(),
                dst: dir.clone(),
                to: keeperkit_storage::Dialect::Native,
                at: crate::At { at: None, at_index: None },
                format: None,
                log_dir: None,
                lossy: false,
                compression: None,
                clickhouse_version: None,
                jute_maxbuffer: None,
                json: false,
            };
            let fs = keeperkit_vfs::std_fs();
            super::convert::run(&fs, &conv, false, &mut std::io::stderr())?;
        } else {
            tracing::info!(
                "{} already holds data: --import {} ignored",
                dir.display(),
                src.display()
            );
        }
    }
    // Held until the process ends: offline tools refuse a directory a server runs on.
    let _lock = keeperkit_storage::replicas::lock_data_dir(&args.data_dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("keeperkit-serve")
        .build()?;
    let fs = keeperkit_vfs::std_fs();
    rt.block_on(async move {
        let server = match replica {
            None => Server::start(fs, &args.data_dir, cfg).await,
            Some((id, peers)) => {
                let rc = keeperkit_server::replica::ReplicaConfig {
                    id,
                    peers,
                    bootstrap: args.bootstrap,
                    raft_bind: ip,
                    heartbeat_ms: args.heartbeat_ms.max(10),
                    join: args.join.clone(),
                };
                Server::start_replicated(fs, &args.data_dir, cfg, rc).await
            }
        }
        .map_err(Failure::usage)?;
        writeln!(out, "serving {} on {}", args.data_dir.display(), server.local_addr())?;
        out.flush()?;
        server.serve(keeperkit_server::server::stop_signal()).await.map_err(Failure::usage)?;
        Ok::<(), Failure>(())
    })?;
    Ok(Outcome::Clean)
}
