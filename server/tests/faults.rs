//! `keeperkit serve` on the fault-injecting file system: a full disk. Writes are
//! refused with an error the client sees (or, for the batch the disk filled under,
//! the connection is closed: their outcome is unknown), reads go on, writes resume
//! when space returns, and after a power loss every acknowledged write is there and
//! no refused one is.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{create_req, Client, TestServer};
use keeperkit_model::ErrorCode;
use keeperkit_server::proto::{Request, Response};
use keeperkit_vfs::{FaultConfig, FaultFs};

#[derive(Default, Debug)]
struct Outcomes {
    acked: Vec<String>,
    refused: Vec<String>,
    unknown: Vec<String>,
}

/// Creates `path` through `c`; a closed connection is reopened on the same session.
fn create(c: &mut Client, addr: std::net::SocketAddr, path: &str, out: &mut Outcomes) {
    let value = vec![0x5a; 3000];
    match c.try_call(Request::Create(create_req(path, &value, 0))) {
        Some(Ok(_)) => out.acked.push(path.into()),
        Some(Err(ErrorCode::Throttled)) => out.refused.push(path.into()),
        Some(Err(e)) => panic!("{path}: {e:?}"),
        None => {
            out.unknown.push(path.into());
            let (sid, pw) = (c.conn.session_id, c.conn.passwd.clone());
            *c = Client::resume(addr, sid, pw, 5000).expect("the session survives");
        }
    }
}

/// `prealloc_kib`: the `preAllocSize` setting (0: segments grow as written, so the
/// disk fills under a write of the log; otherwise they are preallocated, so it fills
/// when the next segment is created).
fn full_disk(prealloc_kib: u64, port: u16) {
    let fs = FaultFs::new(FaultConfig { partial_write_on_enospc: true, ..Default::default() });
    let dir = Path::new("/data");
    let cfg = move |c: &mut keeperkit_server::ServerConfig| {
        c.apply_text(
            Path::new("test.cfg"),
            &format!("preAllocSize={prealloc_kib}\nsnapCount=50\n"),
        )
        .unwrap();
    };
    let srv = TestServer::start_on(Arc::new(fs.clone()), dir, port, cfg);
    let mut w = Client::connect(srv.addr);
    let mut r = Client::connect(srv.addr);
    let mut out = Outcomes::default();
    for i in 0..30 {
        create(&mut w, srv.addr, &format!("/before{i}"), &mut out);
    }
    assert_eq!(out.acked.len(), 30, "{out:?}");

    // The disk fills up: room for a few more writes, then none.
    fs.set_space(Some(fs.used_space() + (16 << 10)));
    let t = Instant::now();
    let mut i = 0;
    while out.refused.len() < 20 {
        assert!(t.elapsed() < Duration::from_secs(60), "writes were never refused: {out:?}");
        create(&mut w, srv.addr, &format!("/full{i}"), &mut out);
        i += 1;
    }
    // Reads go on, on a session opened before, and see every acknowledged write.
    for p in &out.acked {
        match r.get(p, false) {
            Ok(Response::GetData { data: Some(d), .. }) => assert_eq!(d.len(), 3000, "{p}"),
            other => panic!("{p}: {other:?}"),
        }
    }
    for p in &out.refused {
        assert_eq!(r.get(p, false), Err(ErrorCode::NoNode), "{p} was refused");
    }
    assert_eq!(srv.word("ruok"), "imok");

    // Space returns: writes are accepted again (the server retries on its own).
    fs.set_space(None);
    let t = Instant::now();
    let before = out.acked.len();
    let mut j = 0;
    while out.acked.len() < before + 20 {
        assert!(t.elapsed() < Duration::from_secs(30), "writes did not resume: {out:?}");
        create(&mut w, srv.addr, &format!("/after{j}"), &mut out);
        j += 1;
    }
    assert!(r.get(&format!("/after{}", j - 1), false).is_ok());
    srv.stop();

    // Power loss, restart: every acknowledged write is there, no refused one is.
    fs.crash(7);
    let srv = TestServer::start_on(Arc::new(fs.clone()), dir, port, cfg);
    let mut c = Client::connect(srv.addr);
    for p in &out.acked {
        assert!(c.get(p, false).is_ok(), "{p} was acknowledged and is lost");
    }
    for p in &out.refused {
        assert_eq!(c.get(p, false), Err(ErrorCode::NoNode), "{p} was refused and is there");
    }
    assert!(c.create("/restarted", b"", 0).is_ok());
    eprintln!(
        "preAllocSize={prealloc_kib}: {} acknowledged, {} refused, {} unknown",
        out.acked.len(),
        out.refused.len(),
        out.unknown.len()
    );
    srv.stop();
}

#[test]
fn a_full_disk_under_a_growing_log_refuses_writes_and_recovers() {
    full_disk(0, 22114);
}

#[test]
fn a_full_disk_at_a_new_segment_refuses_writes_and_recovers() {
    full_disk(64, 22115);
}
