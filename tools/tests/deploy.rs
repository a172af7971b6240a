//! deploy/keeperkit.yaml parses (PyYAML, through python3) and its parts agree: three
//! replicas started in parallel, a PVC template mounted where the data directory is,
//! readiness on /ready and liveness on /livez on the HTTP port the command serves, a
//! PodDisruptionBudget of one, a headless Service publishing not-ready pods whose name
//! is the StatefulSet's serviceName and the domain of every name in --peers, and a
//! client Service. Also that the command it runs parses with `keeperkit serve`'s own
//! flags (`--help` of the same binary lists each one).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

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
