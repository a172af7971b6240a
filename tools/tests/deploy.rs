//! deploy/keeperkit.yaml parses (PyYAML, through python3) and its parts agree: three
//! replicas started in parallel, a PVC template mounted where the data directory is,
//! readiness on /ready and liveness on /livez on the HTTP port the command serves, a
//! PodDisruptionBudget of one, a headless Service publishing not-ready pods whose name
//! is the StatefulSet's serviceName and the domain of every name in --peers, and a
//! client Service. Also that the command it runs parses with `keeperkit serve`'s own
//! flags (`--help` of the same binary lists each one).
//!
//! `the_pods_command_runs_as_processes_on_loopback` runs the StatefulSet's own script
//! (taken from the YAML) as three processes, pod N on 127.0.0.(N+2) with the pod names
//! in `--peers` mapped to those addresses and the ports moved into this test's range:
//! the parallel first start creates the cluster, every pod answers /livez and becomes
//! ready on /ready, a rolling restart (SIGTERM, same command, wait for /ready before the
//! next pod, as the StatefulSet controller does) loses no acknowledged write, a pod
//! recreated on an empty volume is rebuilt and ready again, and after a lost quorum
//! (`recover --force-new-cluster` on one volume, the other two deleted) the three pods'
//! usual script brings back a three-voter cluster with every write. Bounded in time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keeperkit_model::Acl;
use keeperkit_server::client::{Client, ConnectOptions};
use keeperkit_server::proto::{create_mode, CreateRequest, Request};

use serde_json::Value;

fn manifests() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/keeperkit.yaml");
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]))",
        ])
        .arg(&path)
        .output()
        .expect("python3 (with PyYAML) runs");
    assert!(
        out.status.success(),
        "the YAML does not parse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn the_kubernetes_manifests_parse_and_agree() {
    let docs = manifests();
    assert_eq!(docs.len(), 4, "{docs:?}");
    let sts = of_kind(&docs, "StatefulSet", "keeperkit");
    let spec = &sts["spec"];
    assert_eq!(spec["replicas"], 3);
    assert_eq!(spec["podManagementPolicy"], "Parallel");
    let labels = &spec["template"]["metadata"]["labels"];
    assert_eq!(&spec["selector"]["matchLabels"], labels);

    let peers = of_kind(&docs, "Service", spec["serviceName"].as_str().unwrap());
    assert_eq!(peers["spec"]["clusterIP"], "None");
    assert_eq!(peers["spec"]["publishNotReadyAddresses"], true);
    assert_eq!(&peers["spec"]["selector"], labels);
    let client = of_kind(&docs, "Service", "keeperkit");
    assert_eq!(&client["spec"]["selector"], labels);
    let pdb = of_kind(&docs, "PodDisruptionBudget", "keeperkit");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);

    let c = &spec["template"]["spec"]["containers"][0];
    let port = |name: &str| -> u64 {
        c["ports"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["containerPort"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    let script = c["command"][2].as_str().unwrap();
    assert!(script.contains(&format!("--http-port {}", port("http"))), "{script}");
    assert!(script.contains("--bootstrap"), "{script}");
    // --peers: one entry per replica, ids 1..=3, each pod's stable name in the headless
    // Service, the Raft and client ports the container opens.
    let domain = format!("{}.${{POD_NAMESPACE}}.svc", spec["serviceName"].as_str().unwrap());
    let var = |name: &str| -> String {
        let line =
            script.lines().find(|l| l.trim_start().starts_with(&format!("{name}="))).unwrap();
        line.trim()[name.len() + 1..].trim_matches('"').to_string()
    };
    assert_eq!(var("domain"), domain);
    let list = var("peers").replace("${domain}", &domain);
    let entries: Vec<&str> = list.split(',').collect();
    assert_eq!(entries.len(), 3, "{list}");
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(
            *e,
            format!("{}=keeperkit-{i}.{domain}:{}:{}", i + 1, port("raft"), port("client")),
        );
    }
    assert!(script.contains("id=$((ordinal + 1))"), "{script}");
    // The data directory is the volume.
    let claim = spec["volumeClaimTemplates"][0]["metadata"]["name"].as_str().unwrap();
    let mount = c["volumeMounts"].as_array().unwrap().iter().find(|m| m["name"] == claim).unwrap();
    let dir = mount["mountPath"].as_str().unwrap();
    assert!(script.contains(&format!("keeperkit serve {dir} ")), "{script}");
    // Every flag of the command is one of `keeperkit serve`'s.
    let help =
        Command::new(env!("CARGO_BIN_EXE_keeperkit")).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in script.split_whitespace().filter(|w| w.starts_with("--")) {
        assert!(help.contains(flag), "keeperkit serve has no {flag}");
    }
}

const RAFT: u16 = 24534;
const CLIENT: u16 = 24535;
const HTTP: u16 = 24536;

fn ip(pod: usize) -> String {
    format!("127.0.0.{}", pod + 2)
}

/// The pod's script as the StatefulSet runs it, with what only a Kubernetes cluster
/// provides mapped onto this machine: pod names to loopback addresses, the ports into
/// this test's range, the volume to a directory.
fn pod_script(script: &str, pod: usize, data: &Path) -> String {
    let mut out = script.to_string();
    for i in 0..3 {
        out = out.replace(&format!("keeperkit-{i}.${{domain}}"), &ip(i));
    }
    out.replace(":9234", &format!(":{RAFT}"))
        .replace(":2181", &format!(":{CLIENT}"))
        .replace("--http-port 8080", &format!("--http-port {HTTP}"))
        .replace("--bind 0.0.0.0", &format!("--bind {}", ip(pod)))
        .replace("/var/lib/keeperkit", data.to_str().unwrap())
}

struct Pod {
    child: Child,
}

impl Pod {
    fn start(script: &str, pod: usize, data: &Path, logs: &Path) -> Pod {
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_keeperkit"));
        let path = format!(
            "{}:{}",
            bin.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join(format!("keeperkit-{pod}.log")))
            .unwrap();
        let child = Command::new("/bin/sh")
            .args(["-c", &pod_script(script, pod, data)])
            .env("HOSTNAME", format!("keeperkit-{pod}"))
            .env("POD_NAMESPACE", "default")
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Pod { child }
    }

    /// SIGTERM (what the kubelet sends), then wait for the exit.
    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "pod did not stop on SIGTERM within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP GET on pod `pod`: (status code, body); (0, "") while it does not answer.
fn get(pod: usize, path: &str) -> (u16, String) {
    let Ok(mut s) = std::net::TcpStream::connect((ip(pod).as_str(), HTTP)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    if s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

fn wait_ready(pod: usize, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (code, body) = get(pod, "/ready");
        if code == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "pod {pod} not ready within {secs} s: {code} {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn create(path: &str) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Some(b"v".to_vec()),
        acl: Acl::open_unsafe(),
        flags: create_mode::PERSISTENT,
        ttl: None,
    })
}

/// Creates `paths` through pod `pod`, each acknowledged. A connection lost meanwhile (a
/// leader stopping: the outcome is unknown) is retried on a new one, as a ZooKeeper
/// client does; a retried create that finds its node is one that succeeded before.
async fn write(pod: usize, paths: &[String]) {
    let addr = format!("{}:{CLIENT}", ip(pod));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut c: Option<Client> = None;
    for p in paths {
        let mut retried = false;
        loop {
            assert!(Instant::now() < deadline, "{p} not acknowledged through pod {pod} in 60 s");
            if c.is_none() {
                c = Client::connect(&addr, &ConnectOptions::default()).await.ok();
            }
            let Some(cl) = c.as_mut() else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            match cl.call(&create(p)).await {
                Ok(r) if r.header.err == 0 => break,
                Ok(r) if r.header.err == -110 && retried => break,
                Ok(r) => panic!("{p} through pod {pod}: error {}", r.header.err),
                Err(_) => {
                    c = None;
                    retried = true;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    if let Some(c) = c {
        c.close().await.unwrap();
    }
}

async fn all_there(pod: usize, paths: &[String]) {
    let addr = format!("{}:{CLIENT}", ip(pod));
    let mut c = Client::connect(&addr, &ConnectOptions::default()).await.unwrap();
    assert_eq!(c.call(&Request::Sync { path: "/".into() }).await.unwrap().header.err, 0);
    for p in paths {
        let r = c.call(&Request::Exists { path: p.clone(), watch: false }).await.unwrap();
        assert_eq!(r.header.err, 0, "{p} is missing on pod {pod}");
    }
    c.close().await.unwrap();
}

#[test]
fn the_pods_command_runs_as_processes_on_loopback() {
    let started = Instant::now();
    let docs = manifests();
    let sts = of_kind(&docs, "StatefulSet", "keeperkit");
    let script = sts["spec"]["template"]["spec"]["containers"][0]["command"][2]
        .as_str()
        .unwrap()
        .to_string();
    let t = tempfile::tempdir().unwrap();
    let logs = t.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let data: Vec<PathBuf> = (0..3).map(|i| t.path().join(format!("data-keeperkit-{i}"))).collect();
    // podManagementPolicy: Parallel.
    let mut pods: Vec<Option<Pod>> =
        (0..3).map(|i| Some(Pod::start(&script, i, &data[i], &logs))).collect();
    for i in 0..3 {
        wait_ready(i, 60);
        assert_eq!(get(i, "/livez").0, 200);
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut acked: Vec<String> = (0..50).map(|i| format!("/first{i}")).collect();
    rt.block_on(write(0, &acked));
    // A rolling update: highest ordinal first, each pod ready before the next; writes
    // go on through a pod that is up.
    for pod in [2usize, 1, 0] {
        pods[pod].take().unwrap().terminate();
        let through = (pod + 1) % 3;
        let batch: Vec<String> = (0..20).map(|i| format!("/roll{pod}-{i}")).collect();
        rt.block_on(write(through, &batch));
        acked.extend(batch);
        pods[pod] = Some(Pod::start(&script, pod, &data[pod], &logs));
        wait_ready(pod, 60);
    }
    // A pod recreated on a new, empty volume: rebuilt from the leader, ready again.
    pods[1].take().unwrap().terminate();
    std::fs::remove_dir_all(&data[1]).unwrap();
    pods[1] = Some(Pod::start(&script, 1, &data[1], &logs));
    wait_ready(1, 90);
    let status: serde_json::Value = serde_json::from_str(&get(1, "/status").1).unwrap();
    assert_eq!(status["rebuilding"], false, "{status}");
    assert!(status["voters"].as_array().unwrap().contains(&serde_json::json!(2)), "{status}");
    for pod in 0..3 {
        rt.block_on(all_there(pod, &acked));
    }
    // A lost quorum (the recipe of docs/OPERATIONS.md): pods 0 and 2 lose their volumes
    // for good; the StatefulSet is scaled to 0; `recover --force-new-cluster` on pod 1's
    // volume; the other claims are deleted; scaled back to 3, all pods run the same
    // script: pod 1 leads alone, pods 0 and 2 are rebuilt from it, all ready.
    for p in pods.iter_mut().map(Option::take) {
        p.unwrap().terminate();
    }
    let r = Command::new(env!("CARGO_BIN_EXE_keeperkit"))
        .args(["recover", "--force-new-cluster", data[1].to_str().unwrap()])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    std::fs::remove_dir_all(&data[0]).unwrap();
    std::fs::remove_dir_all(&data[2]).unwrap();
    let pods: Vec<Pod> = (0..3).map(|i| Pod::start(&script, i, &data[i], &logs)).collect();
    for i in [1, 0, 2] {
        wait_ready(i, 90);
    }
    let status: serde_json::Value = serde_json::from_str(&get(1, "/status").1).unwrap();
    assert_eq!(status["voters"], serde_json::json!([1, 2, 3]), "{status}");
    for pod in 0..3 {
        rt.block_on(all_there(pod, &acked));
    }
    for p in pods {
        p.terminate();
    }
    assert!(started.elapsed() < Duration::from_secs(180), "took {:?}", started.elapsed());
}
