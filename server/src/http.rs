//! `--http-port`: `/livez`, `/ready` (JSON: role and whether it serves; a replica is
//! ready only in a working quorum), `/status` (JSON; a replica's Raft state) and
//! `/metrics` (Prometheus text format, with ZooKeeper's `mntr` names). A minimal
//! HTTP/1.1 responder: one GET per connection, bounded request size and time.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use crate::server::Shared;

/// Serves until the listener fails.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((s, addr)) => {
                let sh = shared.clone();
                tokio::spawn(async move {
                    if let Err(e) = one(sh, s).await {
                        debug!(%addr, "http: {e}");
                    }
                });
            }
            Err(e) => {
                warn!("http accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The Prometheus text of the metrics.
pub(crate) fn prometheus(shared: &Shared) -> String {
    let mut out = String::new();
    for (k, v) in crate::fourlw::metrics(shared) {
        if let Ok(n) = v.parse::<f64>() {
            out.push_str(&format!("# TYPE {k} gauge\n{k} {n}\n"));
        }
    }
    out
}

async fn one(shared: Arc<Shared>, mut s: TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let read = async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<(), std::io::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request too slow"))??;
    let line = String::from_utf8_lossy(&buf);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let serving = shared.serving.load(Ordering::SeqCst);
    let (status, ctype, body) = match (method, path) {
        ("GET", "/livez") => ("200 OK", "text/plain", "ok\n".to_string()),
        ("GET", "/ready") => match &shared.replica {
            None => (
                if serving { "200 OK" } else { "503 Service Unavailable" },
                "application/json",
                format!("{{\"role\":\"standalone\",\"serving\":{serving}}}\n"),
            ),
            Some(r) => {
                let (ready, why) = r.ready();
                let ready = ready && serving;
                (
                    if ready { "200 OK" } else { "503 Service Unavailable" },
                    "application/json",
                    format!(
                        "{{\"role\":\"{}\",\"serving\":{serving},\"ready\":{ready},\"reason\":\"{}\"}}\n",
                        r.state_name(),
                        why.replace('"', "'")
                    ),
                )
            }
        },
        ("GET", "/status") => match &shared.replica {
            Some(r) => ("200 OK", "application/json", r.status_json()),
            None => (
                "200 OK",
                "application/json",
                format!(
                    "{{\"state\":\"standalone\",\"applied_zxid\":\"{:#x}\"}}\n",
                    shared.last_zxid()
                ),
            ),
        },
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4", prometheus(&shared)),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    s.shutdown().await
}
