//! `--tls-cert` / `--tls-key`: the ZooKeeper protocol over TLS (rustls on both ends).
//! The certificate in `tests/data` is a self-signed test certificate for localhost and
//! 127.0.0.1 (EC P-256, valid for 100 years); its key protects nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::{create_req, TestServer};
use keeperkit_server::proto::{
    decode_reply, encode_connect, encode_request, ConnectRequest, ConnectResponse, FrameBuffer,
    Reply, Request, Response, DEFAULT_MAX_FRAME,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

#[test]
fn the_protocol_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(dir.path(), 22110, |c| {
        c.tls = Some((data("test-cert.pem"), data("test-key.pem")));
    });
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(data("test-cert.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let tcp = TcpStream::connect(srv.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let mut fb = FrameBuffer::new(DEFAULT_MAX_FRAME);
    let mut next = |s: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>| -> Vec<u8> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(f) = fb.next_frame().unwrap() {
                return f;
            }
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "the server closed the connection");
            fb.extend(&buf[..n]);
        }
    };
    let connect = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 5000,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: Some(false),
    };
    s.write_all(&encode_connect(&connect)).unwrap();
    let resp = ConnectResponse::decode(&next(&mut s), DEFAULT_MAX_FRAME).unwrap();
    assert_ne!(resp.session_id, 0);
    s.write_all(&encode_request(1, &Request::Create(create_req("/tls", b"over tls", 0)))).unwrap();
    s.write_all(&encode_request(2, &Request::GetData { path: "/tls".into(), watch: false }))
        .unwrap();
    let ops =
        [(1, keeperkit_server::proto::op::CREATE), (2, keeperkit_server::proto::op::GET_DATA)];
    let op_of = |x: i32| ops.iter().find(|(i, _)| *i == x).map(|(_, o)| *o);
    let r1 = decode_reply(&next(&mut s), DEFAULT_MAX_FRAME, op_of).unwrap();
    assert!(matches!(r1, Reply::Response(h, Some(Response::Create { .. })) if h.xid == 1));
    let r2 = decode_reply(&next(&mut s), DEFAULT_MAX_FRAME, op_of).unwrap();
    assert!(
        matches!(r2, Reply::Response(_, Some(Response::GetData { data: Some(d), .. })) if d == b"over tls")
    );
    // A plain-text client gets nowhere.
    let mut plain = TcpStream::connect(srv.addr).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    plain.write_all(&encode_connect(&connect)).unwrap();
    let mut b = [0u8; 64];
    let n = plain.read(&mut b).unwrap_or(0);
    assert!(n == 0 || b[0] == 0x15, "no ZooKeeper answer without TLS (got {n} bytes)");
    srv.stop();
}
