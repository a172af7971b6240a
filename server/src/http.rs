//! `--http-port`: `/livez`, `/ready` (JSON: role and whether it serves; a replica is
//! ready only in a working quorum), `/status` (JSON; a replica's Raft state) and
//! `/metrics` (Prometheus text format, with ZooKeeper's `mntr` names). A replica also
//! answers the membership requests (JSON, answered by the leader, see
//! `replica::members`): `GET /members`, `GET /members/can-stop?id=N`,
//! `POST /members/add?id=N&addr=HOST:RAFT_PORT:CLIENT_PORT&version=V`,
//! `POST /members/remove?id=N&version=V`, `POST /members/transfer?to=N[&timeout_ms=MS]`
//! and `POST /members/join?...` (what `serve --join` sends). A minimal HTTP/1.1
//! responder: one request per connection, no body, bounded request size and time.

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
        (m, p) if p == "/members" || p.starts_with("/members/") || p.starts_with("/members?") => {
            match (&shared.replica, admin_request(m, p)) {
                (None, _) => (
                    "404 Not Found",
                    "application/json",
                    "{\"error\":\"not a replicated server\",\"code\":\"standalone\"}\n".to_string(),
                ),
                (Some(_), Err(status)) => (
                    status,
                    "application/json",
                    format!(
                        "{{\"error\":\"{m} {}: no such request\",\"code\":\"bad_request\"}}\n",
                        p.split('?').next().unwrap_or("")
                    ),
                ),
                (Some(r), Ok(req)) => {
                    let (code, body) = r.admin(&req).await;
                    (status_line(code), "application/json", body)
                }
            }
        }
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

/// A membership route as a request for `Replica::admin` (`op?params`), or the status
/// of a route that does not exist.
fn admin_request(method: &str, path: &str) -> Result<String, &'static str> {
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    let op = match (method, route) {
        ("GET", "/members") => "members",
        ("GET", "/members/can-stop") => "can-stop",
        ("POST", "/members/add") => "add",
        ("POST", "/members/join") => "join",
        ("POST", "/members/remove") => "remove",
        ("POST", "/members/transfer") => "transfer",
        (_, "/members" | "/members/can-stop" | "/members/add" | "/members/join")
        | (_, "/members/remove" | "/members/transfer") => return Err("405 Method Not Allowed"),
        _ => return Err("404 Not Found"),
    };
    Ok(if query.is_empty() { op.to_string() } else { format!("{op}?{query}") })
}

fn status_line(code: u16) -> &'static str {
    match code {
        200 => "200 OK",
        400 => "400 Bad Request",
        404 => "404 Not Found",
        409 => "409 Conflict",
        422 => "422 Unprocessable Entity",
        502 => "502 Bad Gateway",
        503 => "503 Service Unavailable",
        504 => "504 Gateway Timeout",
        _ => "500 Internal Server Error",
    }
}

/// One HTTP/1.1 request without a body to `HOST:PORT` (blocking): the status code and
/// the body. For `keeperkit members` and `serve --join`.
pub fn call(
    addr: &str,
    method: &str,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let sa = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let mut s = std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(5))
        .map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).map_err(|e| format!("{addr}: {e}"))?;
    let mut buf = Vec::new();
    s.take(16 << 20).read_to_end(&mut buf).map_err(|e| format!("{addr}: {e}"))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) =
        text.split_once("\r\n\r\n").ok_or_else(|| format!("{addr}: not an HTTP answer"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("{addr}: not an HTTP answer"))?;
    Ok((code, body.to_string()))
}
