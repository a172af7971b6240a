//! A TCP proxy in front of every node's Raft port, with one switch per link.
//!
//! Every node's `--peers` names the proxy's address for each member's Raft port
//! (127.0.0.1), while the node itself binds its Raft port on its own loopback address
//! (127.0.0.N+1, `--bind`). So every Raft connection goes through the proxy of the
//! node it calls. A connection starts with the Raft layer's hello frame, which names
//! the calling node: the proxy reads it, and the connection belongs to the link
//! (caller -> callee). A cut link closes its open connections and refuses new ones
//! until it is healed; a partition cuts both directions of every link between its
//! sides.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// A node id.
pub type NodeId = u64;

/// Counters of one proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections forwarded.
    pub forwarded: u64,
    /// Connections refused because their link was cut.
    pub refused: u64,
    /// Open connections closed by a cut.
    pub severed: u64,
}

#[derive(Default)]
struct Table {
    cut: BTreeSet<(NodeId, NodeId)>,
    open: HashMap<u64, ((NodeId, NodeId), AbortHandle)>,
    stats: ProxyStats,
}

/// The proxies of a cluster and their link switches.
#[derive(Clone)]
pub struct Proxies {
    table: Arc<Mutex<Table>>,
    next_conn: Arc<AtomicU64>,
}

fn lock(t: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// The largest hello accepted (a cluster id and two node ids).
const MAX_HELLO: usize = 4096;

/// Reads the Raft hello frame: its bytes (to pass on) and the calling node.
async fn read_hello(s: &mut TcpStream) -> std::io::Result<(Vec<u8>, NodeId)> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await?;
    let len = u32::from_le_bytes(head) as usize;
    // crc (4), kind (1), call id (8), then the hello: cluster (u32 length and bytes),
    // caller (u64), callee (u64)
    if !(13 + 4 + 16..=MAX_HELLO).contains(&len) {
        return Err(bad("not a Raft hello (length)"));
    }
    let mut rest = vec![0u8; len];
    s.read_exact(&mut rest).await?;
    if rest[4] != keeperkit_raft::net::HELLO {
        return Err(bad("not a Raft hello (kind)"));
    }
    let from = &rest[len - 16..len - 8];
    let from = u64::from_le_bytes(from.try_into().map_err(|_| bad("short hello"))?);
    let mut bytes = head.to_vec();
    bytes.extend_from_slice(&rest);
    Ok((bytes, from))
}

impl Proxies {
    /// Starts one proxy per node: `(node, listen, target)`.
    pub async fn start(nodes: &[(NodeId, SocketAddr, SocketAddr)]) -> std::io::Result<Proxies> {
        let p = Proxies { table: Arc::default(), next_conn: Arc::default() };
        for &(to, listen, target) in nodes {
            let l = TcpListener::bind(listen).await?;
            let p2 = p.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((s, _)) = l.accept().await else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    let p3 = p2.clone();
                    tokio::spawn(async move { p3.serve(s, to, target).await });
                }
            });
        }
        Ok(p)
    }

    async fn serve(&self, mut inbound: TcpStream, to: NodeId, target: SocketAddr) {
        let Ok(Ok((hello, from))) =
            tokio::time::timeout(Duration::from_secs(5), read_hello(&mut inbound)).await
        else {
            return;
        };
        if self.is_cut(from, to) {
            lock(&self.table).stats.refused += 1;
            return;
        }
        let Ok(Ok(mut outbound)) =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(target)).await
        else {
            return;
        };
        let _ = inbound.set_nodelay(true);
        let _ = outbound.set_nodelay(true);
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let table = self.table.clone();
        // The task is registered before it can run past its first await; a cut that
        // comes in between finds it and aborts it.
        let mut t = lock(&self.table);
        if t.cut.contains(&(from, to)) {
            t.stats.refused += 1;
            return;
        }
        let task = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            if outbound.write_all(&hello).await.is_ok() {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
            lock(&table).open.remove(&id);
        });
        t.open.insert(id, ((from, to), task.abort_handle()));
        t.stats.forwarded += 1;
    }

    /// Whether the link `from -> to` is cut.
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        lock(&self.table).cut.contains(&(from, to))
    }

    /// Cuts `from -> to` (the connections `from` opens to `to`).
    pub fn cut(&self, from: NodeId, to: NodeId) {
        let mut t = lock(&self.table);
        t.cut.insert((from, to));
        let doomed: Vec<u64> =
            t.open.iter().filter(|(_, (l, _))| *l == (from, to)).map(|(id, _)| *id).collect();
        for id in doomed {
            if let Some((_, h)) = t.open.remove(&id) {
                h.abort();
                t.stats.severed += 1;
            }
        }
    }

    /// Cuts both directions of every link between nodes of different groups; links
    /// within a group are healed.
    pub fn partition(&self, groups: &[Vec<NodeId>]) {
        self.heal();
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i != j {
                    for &x in a {
                        for &y in b {
                            self.cut(x, y);
                        }
                    }
                }
            }
        }
    }

    /// Heals every link.
    pub fn heal(&self) {
        lock(&self.table).cut.clear();
    }

    /// The links cut now.
    pub fn cut_links(&self) -> Vec<(NodeId, NodeId)> {
        lock(&self.table).cut.iter().copied().collect()
    }

    /// The counters so far.
    pub fn stats(&self) -> ProxyStats {
        lock(&self.table).stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn hello(from: u64, to: u64) -> Vec<u8> {
        let mut msg = Vec::new();
        msg.extend_from_slice(&3u32.to_le_bytes());
        msg.extend_from_slice(b"abc");
        msg.extend_from_slice(&from.to_le_bytes());
        msg.extend_from_slice(&to.to_le_bytes());
        let mut body = vec![keeperkit_raft::net::HELLO];
        body.extend_from_slice(&0u64.to_le_bytes());
        body.extend_from_slice(&msg);
        let mut f = u32::try_from(body.len() + 4).unwrap().to_le_bytes().to_vec();
        f.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        f.extend_from_slice(&body);
        f
    }

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        a
    }

    async fn round_trip(proxy: SocketAddr, from: u64) -> bool {
        let Ok(mut s) = TcpStream::connect(proxy).await else { return false };
        let h = hello(from, 2);
        if s.write_all(&h).await.is_err() || s.write_all(b"ping").await.is_err() {
            return false;
        }
        let mut back = vec![0u8; h.len() + 4];
        matches!(
            tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut back)).await,
            Ok(Ok(_))
        ) && back.ends_with(b"ping")
    }

    #[tokio::test]
    async fn links_are_cut_per_caller_and_healed() {
        let target = echo_server().await;
        // a free port for the proxy
        let listen = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let p = Proxies::start(&[(2, listen, target)]).await.unwrap();
        assert!(round_trip(listen, 1).await);
        // an open connection of the link is closed by the cut
        let mut open = TcpStream::connect(listen).await.unwrap();
        open.write_all(&hello(1, 2)).await.unwrap();
        let mut back = vec![0u8; hello(1, 2).len()];
        open.read_exact(&mut back).await.unwrap();
        p.cut(1, 2);
        let mut buf = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_secs(2), open.read(&mut buf)).await;
        assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "the cut closes the connection: {r:?}");
        assert!(!round_trip(listen, 1).await, "1 -> 2 is cut");
        assert!(round_trip(listen, 3).await, "3 -> 2 is not");
        assert_eq!(p.cut_links(), vec![(1, 2)]);
        p.heal();
        assert!(round_trip(listen, 1).await);
        let s = p.stats();
        assert!(s.forwarded >= 3 && s.refused >= 1 && s.severed >= 1, "{s:?}");
        // a connection that does not start with a hello is dropped
        let mut junk = TcpStream::connect(listen).await.unwrap();
        junk.write_all(&[0xff; 64]).await.unwrap();
        let r = tokio::time::timeout(Duration::from_secs(2), junk.read(&mut buf)).await;
        assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))));
        p.partition(&[vec![1], vec![2, 3]]);
        assert!(p.is_cut(1, 2) && p.is_cut(2, 1) && !p.is_cut(2, 3));
    }
}
