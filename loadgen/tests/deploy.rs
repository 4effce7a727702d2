//! `deploy/k8s/loadgen-job.yaml`: the Indexed Job's wiring (index → shard,
//! parallelism = completions = the shard count the shards and the merge
//! use, one shared volume) read from the YAML, and its shard and merge
//! scripts run here as real processes against embedded cores.

use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

mod support;
use support::repo_file;

fn docs() -> Vec<Yaml> {
    let text = std::fs::read_to_string(repo_file("deploy/k8s/loadgen-job.yaml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap()
}

fn find<'a>(docs: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn env<'a>(container: &'a Yaml, name: &str) -> &'a Yaml {
    container["env"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no env {name}"))
}

fn script(container: &Yaml) -> String {
    assert_eq!(container["command"][0].as_str(), Some("/bin/sh"));
    container["args"][0].as_str().unwrap().to_string()
}

fn claim(job: &Yaml) -> String {
    job["spec"]["template"]["spec"]["volumes"]
        .as_vec()
        .unwrap()
        .iter()
        .find_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
        .unwrap()
        .to_string()
}

#[test]
fn the_indexed_job_and_the_merge_agree_on_the_shards() {
    let docs = docs();
    let shards = find(&docs, "Job", "c24-loadgen-shards");
    let merge = find(&docs, "Job", "c24-loadgen-merge");
    let spec = &shards["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let n = spec["completions"].as_i64().unwrap();
    assert!(n >= 2);
    assert_eq!(spec["parallelism"].as_i64(), Some(n), "all shards at once");
    let shard = &spec["template"]["spec"]["containers"][0];
    let merger = &merge["spec"]["template"]["spec"]["containers"][0];
    for c in [shard, merger] {
        assert_eq!(
            env(c, "SHARDS")["value"].as_str(),
            Some(n.to_string().as_str())
        );
        assert_eq!(env(c, "RUN")["value"], env(shard, "RUN")["value"]);
    }
    assert_eq!(
        env(shard, "JOB_COMPLETION_INDEX")["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.annotations['batch.kubernetes.io/job-completion-index']")
    );
    let s = script(shard);
    assert!(
        s.contains("--shard ${JOB_COMPLETION_INDEX}/${SHARDS}"),
        "{s}"
    );
    assert!(
        s.contains("--report-json \"$out/shard-${JOB_COMPLETION_INDEX}.json\""),
        "{s}"
    );
    let m = script(merger);
    assert!(
        m.contains("c24-loadgen merge --scenario \"${SCENARIO}\""),
        "{m}"
    );
    assert!(m.contains("$out/shard-$i.json"), "{m}");
    // One shared volume: the PVC the file declares, read-write by many pods.
    let pvc = find(&docs, "PersistentVolumeClaim", "c24-loadgen-reports");
    assert_eq!(
        pvc["spec"]["accessModes"][0].as_str(),
        Some("ReadWriteMany")
    );
    assert_eq!(claim(shards), "c24-loadgen-reports");
    assert_eq!(claim(merge), "c24-loadgen-reports");
    // The shipped scenario is valid.
    let cm = find(&docs, "ConfigMap", "c24-loadgen-scenario");
    let toml = cm["data"]["scenario.toml"].as_str().unwrap();
    c24_loadgen::scenario::parse_str(Path::new("configmap/scenario.toml"), toml).expect("valid");
}

#[test]
fn the_job_scripts_shard_and_merge_for_real() {
    let docs = docs();
    let shard = script(
        &find(&docs, "Job", "c24-loadgen-shards")["spec"]["template"]["spec"]["containers"][0],
    );
    let merge = script(
        &find(&docs, "Job", "c24-loadgen-merge")["spec"]["template"]["spec"]["containers"][0],
    );
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_c24-loadgen"), bin.join("c24-loadgen")).unwrap();
    let scenario = dir.path().join("scenario.toml");
    std::fs::write(
        &scenario,
        "name = \"k8s\"\nduration = \"1s\"\ngrace = \"3s\"\n[[stages]]\nrate = 12\nduration = \"1s\"\n[[script]]\nchannel = \"webchat\"\nsteps = [{ send = \"hoi\" }]\n[thresholds]\n\"webchat.ack.count\" = \"== 12\"\n",
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let shards = 3;
    let run = |script: &str, index: Option<usize>| {
        let mut c = std::process::Command::new("/bin/sh");
        c.arg("-c")
            .arg(script)
            .env("PATH", &path)
            .env("SHARDS", shards.to_string())
            .env("RUN", "t1")
            .env("REPORTS_DIR", dir.path())
            .env("SCENARIO", &scenario)
            .env_remove("C24_TARGET")
            .env_remove("C24_ADMIN_TOKEN");
        if let Some(i) = index {
            c.env("JOB_COMPLETION_INDEX", i.to_string());
        }
        c
    };
    // The shards run at once, as the Job's pods do.
    let children: Vec<_> = (0..shards)
        .map(|i| {
            run(&shard, Some(i))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        // A shard's own threshold verdict on its share is not the exit code.
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let out_dir = dir.path().join("t1");
    for i in 0..shards {
        assert!(out_dir.join(format!("shard-{i}.done")).exists());
    }
    let out = run(&merge, None).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("merged.json")).unwrap())
            .unwrap();
    // Every arrival of the whole schedule, split over three shards, merged.
    assert_eq!(merged["scenarios"][0]["started"], 12, "{merged:#}");
    assert_eq!(merged["passed"], true);
    assert!(out_dir.join("merged.xml").exists());
}
