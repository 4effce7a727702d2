//! `deploy/k8s/chatcore-deployment.yaml` with `chatcore-secret.example.yaml`:
//! the Deployment's wiring read from the YAML (several replicas, a rolling
//! update that never drops below them, readiness on `/readyz`, every value
//! taken from the Secret names a key the example Secret has, the database
//! CA mounted where `C24_DATABASE_CA_FILE` points, a URL with
//! `sslmode=require`), and the container's own args and env starting a real
//! `c24-core` on PostgreSQL over TLS — the Secret's values replaced by the
//! test database's. Skipped with a message without a server or its CA
//! (`support/pg.rs`, `C24_TEST_POSTGRES_CA`).

#[path = "support/node.rs"]
#[allow(dead_code)]
mod node;
#[path = "support/pg.rs"]
#[allow(dead_code)]
mod pg;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use pg::TestDb;
use yaml_rust2::{Yaml, YamlLoader};

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn load(path: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(repo_file(path)).unwrap();
    YamlLoader::load_from_str(&text).unwrap()
}

fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// The example Secret's keys and values.
fn example_secret() -> (String, HashMap<String, String>) {
    let docs = load("deploy/k8s/chatcore-secret.example.yaml");
    let secret = of_kind(&docs, "Secret");
    let name = secret["metadata"]["name"].as_str().unwrap().to_string();
    let data = secret["stringData"]
        .as_hash()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_string(),
                v.as_str().unwrap().to_string(),
            )
        })
        .collect();
    (name, data)
}

/// One container env entry: its name and where its value comes from.
enum EnvValue {
    Literal(String),
    Secret { key: String, optional: bool },
}

fn container_env(container: &Yaml, secret_name: &str) -> Vec<(String, EnvValue)> {
    container["env"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_string();
            let value = if let Some(v) = e["value"].as_str() {
                EnvValue::Literal(v.to_string())
            } else {
                let r = &e["valueFrom"]["secretKeyRef"];
                assert_eq!(r["name"].as_str(), Some(secret_name), "{name}");
                EnvValue::Secret {
                    key: r["key"].as_str().unwrap().to_string(),
                    optional: r["optional"].as_bool().unwrap_or(false),
                }
            };
            (name, value)
        })
        .collect()
}

#[test]
fn the_deployment_is_wired_to_its_secret() {
    let docs = load("deploy/k8s/chatcore-deployment.yaml");
    let d = of_kind(&docs, "Deployment");
    assert!(d["spec"]["replicas"].as_i64().unwrap() >= 2);
    assert_eq!(
        d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"].as_i64(),
        Some(0)
    );
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    let (secret_name, secret) = example_secret();
    let env = container_env(c, &secret_name);
    for (name, value) in &env {
        if let EnvValue::Secret { key, optional } = value {
            assert!(
                *optional || secret.contains_key(key),
                "{name} reads {key}, which the example Secret lacks"
            );
        }
    }
    for needed in [
        "C24_DATABASE_URL",
        "C24_KEK",
        "C24_ADMIN_TOKEN",
        "C24_DATABASE_CA_FILE",
    ] {
        assert!(env.iter().any(|(n, _)| n == needed), "no {needed}");
    }
    assert!(
        secret["database-url"].contains("sslmode=require"),
        "the example URL must ask for TLS"
    );
    // The CA file is the Secret's database-ca.pem, mounted read-only.
    let ca_path = env
        .iter()
        .find_map(|(n, v)| match v {
            EnvValue::Literal(p) if n == "C24_DATABASE_CA_FILE" => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    let mount = c["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|m| ca_path.starts_with(m["mountPath"].as_str().unwrap_or("-")))
        .expect("the CA file is on no mount");
    assert_eq!(mount["readOnly"].as_bool(), Some(true));
    let volume = pod["volumes"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert_eq!(
        volume["secret"]["secretName"].as_str(),
        Some(secret_name.as_str())
    );
    let item = volume["secret"]["items"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|i| {
            Path::new(mount["mountPath"].as_str().unwrap()).join(i["path"].as_str().unwrap())
                == Path::new(&ca_path)
        })
        .expect("no Secret item at the CA path");
    assert!(secret.contains_key(item["key"].as_str().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_containers_args_and_env_start_a_node_over_tls() {
    let Ok(ca) = std::env::var("C24_TEST_POSTGRES_CA") else {
        let required = std::env::var("C24_TEST_POSTGRES_REQUIRED").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "C24_TEST_POSTGRES_CA is not set but C24_TEST_POSTGRES_REQUIRED=1"
        );
        eprintln!("SKIPPED the deployment's node: C24_TEST_POSTGRES_CA is not set");
        return;
    };
    let Some(db) = TestDb::create("deployment").await else {
        return;
    };
    let docs = load("deploy/k8s/chatcore-deployment.yaml");
    let c = &of_kind(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    let (secret_name, mut secret) = example_secret();
    // The test's own values for what the real Secret holds.
    let (_, kek) = c24_chatcore::crypto::Kek::generate().unwrap();
    let url = format!("{}?sslmode=require", db.url);
    secret.insert("database-url".into(), url);
    secret.insert("kek".into(), kek.trim().to_string());
    secret.insert("admin-token".into(), "deployment-admin".into());
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_c24-core"));
    cmd.env_clear();
    for (name, value) in container_env(c, &secret_name) {
        let value = match value {
            // The mounted CA file is the test server's.
            EnvValue::Literal(_) if name == "C24_DATABASE_CA_FILE" => ca.clone(),
            EnvValue::Literal(v) => v,
            EnvValue::Secret { key, optional } => match secret.get(&key) {
                Some(v) => v.clone(),
                None if optional => continue,
                None => panic!("no {key}"),
            },
        };
        cmd.env(name, value);
    }
    // The container's args, with a free loopback port and a temp data dir.
    for arg in c["args"].as_vec().unwrap() {
        let arg = arg.as_str().unwrap();
        if arg.starts_with("--listen=") {
            cmd.arg("--listen=127.0.0.1:0");
        } else if arg.starts_with("--data-dir=") {
            cmd.arg(format!("--data-dir={}", dir.path().display()));
        } else {
            cmd.arg(arg);
        }
    }
    let node = node::spawn_node(cmd);
    let base = Some(node.url.clone());
    let ready = match &base {
        Some(base) => reqwest::get(format!("{base}/readyz"))
            .await
            .map(|r| r.status().as_u16())
            .ok(),
        None => None,
    };
    // While it runs: its connections (pools, listener) are TLS, as the
    // server reports.
    let sql = db.sql().await;
    let ssl: Vec<bool> = sql
        .query(
            "SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid
             WHERE a.datname = current_database() AND a.application_name LIKE 'c24-%'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    drop(node);
    assert_eq!(ready, Some(200));
    assert!(!ssl.is_empty(), "no connection of the node seen");
    assert!(ssl.iter().all(|s| *s), "a plaintext connection: {ssl:?}");
    db.drop_db().await;
}
