use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use keeperkit_model::Stat;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::proto::{
    self, decode_request, encode_connect_response, encode_reply, ConnectRequest, ConnectResponse,
    FrameBuffer, ReplyHeader, Response,
};

/// A toy ZooKeeper: a flat map of paths, enough for the load generator's requests,
/// answering in order through the codec. Counts requests per opcode.
#[derive(Default)]
struct Toy {
    nodes: BTreeMap<String, Vec<u8>>,
    zxid: i64,
    by_op: BTreeMap<i32, u64>,
}

fn parent(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) => "/",
        Some(i) => &p[..i],
        None => "",
    }
}

impl Toy {
    fn exec(&mut self, req: &Request) -> (i32, Option<Response>) {
        *self.by_op.entry(req.op()).or_default() += 1;
        let stat = |d: &Vec<u8>| Stat {
            data_length: i32::try_from(d.len()).unwrap_or(i32::MAX),
            ..Stat::default()
        };
        match req {
            Request::Create(c) => {
                if self.nodes.contains_key(&c.path) {
                    return (ErrorCode::NodeExists.as_i32(), None);
                }
                let par = parent(&c.path);
                if par != "/" && !self.nodes.contains_key(par) {
                    return (ErrorCode::NoNode.as_i32(), None);
                }
                self.zxid += 1;
                self.nodes.insert(c.path.clone(), c.data.clone().unwrap_or_default());
                (0, Some(Response::Create { path: c.path.clone() }))
            }
            Request::Delete { path, .. } => match self.nodes.remove(path) {
                Some(_) => (0, Some(Response::Empty)),
                None => (ErrorCode::NoNode.as_i32(), None),
            },
            Request::SetData { path, data, .. } => match self.nodes.get_mut(path) {
                Some(d) => {
                    *d = data.clone().unwrap_or_default();
                    (0, Some(Response::Stat(stat(d))))
                }
                None => (ErrorCode::NoNode.as_i32(), None),
            },
            Request::GetData { path, .. } => match self.nodes.get(path) {
                Some(d) => (0, Some(Response::GetData { data: Some(d.clone()), stat: stat(d) })),
                None => (ErrorCode::NoNode.as_i32(), None),
            },
            Request::Exists { path, .. } => match self.nodes.get(path) {
                Some(d) => (0, Some(Response::Stat(stat(d)))),
                None => (ErrorCode::NoNode.as_i32(), None),
            },
            Request::GetChildren { path, .. } => {
                let pre = format!("{path}/");
                let kids = self
                    .nodes
                    .keys()
                    .filter(|k| k.starts_with(&pre) && !k[pre.len()..].contains('/'))
                    .map(|k| k[pre.len()..].to_string())
                    .collect();
                (0, Some(Response::Children(kids)))
            }
            Request::Ping | Request::CloseSession => (0, Some(Response::Empty)),
            _ => (ErrorCode::Unimplemented.as_i32(), None),
        }
    }
}

async fn serve(listener: TcpListener, toy: Arc<Mutex<Toy>>) {
    let mut next_session = 0x100_i64;
    loop {
        let Ok((mut sock, _)) = listener.accept().await else { return };
        next_session += 1;
        let sid = next_session;
        let toy = toy.clone();
        tokio::spawn(async move {
            let mut fb = FrameBuffer::new(proto::DEFAULT_MAX_FRAME);
            let mut buf = vec![0u8; 65536];
            let mut connected = false;
            loop {
                let frame = match fb.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => {
                        let n = sock.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        fb.extend(&buf[..n]);
                        continue;
                    }
                    Err(_) => return,
                };
                if !connected {
                    let req =
                        ConnectRequest::decode(&frame, proto::DEFAULT_MAX_FRAME).expect("connect");
                    let resp = ConnectResponse {
                        protocol_version: 0,
                        timeout_ms: req.timeout_ms,
                        session_id: sid,
                        passwd: vec![7; 16],
                        read_only: Some(false),
                    };
                    sock.write_all(&encode_connect_response(&resp)).await.expect("write");
                    connected = true;
                    continue;
                }
                let (hdr, req) = decode_request(&frame, proto::DEFAULT_MAX_FRAME).expect("request");
                let (err, body) = toy.lock().expect("toy").exec(&req);
                let zxid = toy.lock().expect("toy").zxid;
                let out = encode_reply(ReplyHeader { xid: hdr.xid, zxid, err }, body.as_ref());
                if sock.write_all(&out).await.is_err() {
                    return;
                }
                if matches!(req, Request::CloseSession) {
                    return;
                }
            }
        });
    }
}

fn opts(addr: String, mix: &str, nodes: usize) -> Options {
    Options {
        connect: vec![addr],
        clients: 4,
        duration: Duration::from_millis(300),
        mix: Mix::parse(mix).expect("mix"),
        value_size: 100,
        nodes,
        prefix: "/bench".to_string(),
        session_timeout_ms: 10_000,
        threads: 2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_op_of_the_mix_runs_and_is_counted() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let toy = Arc::new(Mutex::new(Toy::default()));
    tokio::spawn(serve(listener, toy.clone()));
    let o = opts(addr.clone(), "create=3,delete=1,set=2,get=2,exists=1,list=1", 50);
    let r = run_async(&o).await.expect("run");
    assert_eq!(r.errors, 0, "{}", r.to_text());
    assert_eq!(r.pool_created, 50);
    let names: Vec<&str> = r.ops.iter().map(|x| x.name).collect();
    assert_eq!(names, ["create", "set", "get", "exists", "delete", "list"]);
    for x in &r.ops {
        assert!(x.ok > 0, "{} never ran: {}", x.name, r.to_text());
        assert!(x.p50_ms <= x.p99_ms && x.p99_ms <= x.p999_ms && x.p999_ms <= x.max_ms);
    }
    assert_eq!(r.ok, r.ops.iter().map(|x| x.ok).sum::<u64>());
    assert_eq!(r.all.ok, r.ok);
    // what the server saw matches what was reported: the pool, the parents
    // (/bench, pool-100, the run node, 4 client nodes), then the measured ops
    {
        let toy = toy.lock().expect("toy");
        let by = |op| toy.by_op.get(&op).copied().unwrap_or(0);
        let created = r.ops.iter().find(|x| x.name == "create").map_or(0, |x| x.ok);
        let deleted = r.ops.iter().find(|x| x.name == "delete").map_or(0, |x| x.ok);
        assert_eq!(toy.nodes.len() as u64, 50 + 3 + 4 + created - deleted);
        assert_eq!(
            by(proto::op::GET_DATA),
            r.ops.iter().find(|x| x.name == "get").map_or(0, |x| x.ok)
        );
        assert_eq!(by(proto::op::CLOSE_SESSION), 5);
    }

    // a second run reuses the pool, and its JSON names every op
    let r = run_async(&opts(addr, "get=1", 50)).await.expect("second run");
    assert_eq!(r.pool_created, 0);
    assert_eq!(r.ops.len(), 1);
    let j = r.to_json();
    assert!(j.starts_with("{\"connect\":[\"127.0.0.1:"), "{j}");
    assert!(j.contains("\"ops\":[{\"op\":\"get\",\"ok\":"), "{j}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_counted_with_their_code() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let toy = Arc::new(Mutex::new(Toy::default()));
    tokio::spawn(serve(listener, toy.clone()));
    let mut o = opts(addr, "set=1", 10);
    o.clients = 1;
    // the pool is made, then removed behind the generator's back: every set fails
    let t = tokio::spawn({
        let toy = toy.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let mut t = toy.lock().expect("toy");
                if (0..10).all(|i| t.nodes.contains_key(&pool_path("/bench", 100, i))) {
                    for i in 0..10 {
                        t.nodes.remove(&pool_path("/bench", 100, i));
                    }
                    return;
                }
            }
        }
    });
    let r = run_async(&o).await.expect("run");
    t.await.expect("remover");
    assert!(r.errors > 0);
    assert_eq!(r.first_errors, vec![(OpKind::Set, ErrorCode::NoNode.as_i32())]);
    assert!(
        r.to_text().contains(&format!("first error of set: -101 ({})", ErrorCode::NoNode.name())),
        "{}",
        r.to_text()
    );
}

#[tokio::test]
async fn a_refused_connection_is_an_error_naming_the_address() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let e = run_async(&opts(addr.clone(), "get=1", 1)).await.expect_err("nothing listens");
    assert!(e.to_string().contains(&addr), "{e}");
}

#[test]
fn mix_parsing() {
    let m = Mix::parse("create=10, set=40,get=50").expect("mix");
    assert_eq!(m.to_string(), "create=10,set=40,get=50");
    assert!(m.uses(OpKind::Get) && !m.uses(OpKind::Delete));
    let picks: Vec<OpKind> = (0..100).map(|r| m.pick(r)).collect();
    assert_eq!(picks.iter().filter(|k| **k == OpKind::Create).count(), 10);
    assert_eq!(picks.iter().filter(|k| **k == OpKind::Set).count(), 40);
    assert_eq!(Mix::parse("get=0,set=1").expect("zero weight dropped").to_string(), "set=1");
    assert!(matches!(Mix::parse("write=1"), Err(OptionsError::MixEntry(_))));
    assert!(matches!(Mix::parse("get"), Err(OptionsError::MixEntry(_))));
    assert!(matches!(Mix::parse("get=-1"), Err(OptionsError::MixEntry(_))));
    assert!(matches!(Mix::parse("get=1,get=2"), Err(OptionsError::MixDuplicate("get"))));
    assert!(matches!(Mix::parse("get=0"), Err(OptionsError::MixTotal)));
    assert!(matches!(Mix::parse(""), Err(OptionsError::MixTotal)));
    assert!(matches!(Mix::parse("get=4000000000"), Err(OptionsError::MixTotal)));
}

#[test]
fn options_are_checked() {
    let good = opts("127.0.0.1:1".to_string(), "get=1", 10);
    assert!(good.validate().is_ok());
    let mut o = good.clone();
    o.nodes = 0;
    assert!(o.validate().is_err(), "get needs a pool");
    o.mix = Mix::parse("create=1").expect("mix");
    assert!(o.validate().is_ok(), "create alone needs none");
    let mut o = good.clone();
    o.prefix = "bench".into();
    assert!(o.validate().is_err());
    let mut o = good.clone();
    o.clients = 0;
    assert!(o.validate().is_err());
    let mut o = good;
    o.value_size = 2 << 20;
    assert!(o.validate().is_err());
}

#[test]
fn percentiles_are_exact_ranks() {
    let v: Vec<u32> = (1..=1000).map(|i| i * 1000).collect();
    assert_eq!(percentile(&v, 500), 500.0);
    assert_eq!(percentile(&v, 990), 990.0);
    assert_eq!(percentile(&v, 999), 999.0);
    assert_eq!(percentile(&v, 1000), 1000.0);
    assert_eq!(percentile(&v[..10], 999), 10.0);
    assert_eq!(percentile(&[], 500), 0.0);
    assert_eq!(percentile(&[7000], 999), 7.0);
}
