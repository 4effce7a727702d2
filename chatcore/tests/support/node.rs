//! A real `c24-core` process for the multi-node tests: started from a
//! `Command`, its URL read from the first line it prints, killed when
//! dropped (a failing test leaves no node running).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Node {
    pub child: Child,
    pub url: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    pub fn ws(&self) -> String {
        self.url.replacen("http", "ws", 1)
    }
}

/// Starts `cmd` and waits for its "listening on" line.
pub fn spawn_node(mut cmd: Command) -> Node {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    listening(child)
}

/// A node started with a piped stdout, once it printed where it listens.
pub fn listening(mut child: Child) -> Node {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("c24-core listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Node { child, url }
}

/// A KEK file shared by the nodes (each opens the others' tenants with it).
pub fn kek_file(dir: &Path) -> PathBuf {
    let (_, text) = c24_chatcore::crypto::Kek::generate().unwrap();
    let path = dir.join("kek.b64");
    std::fs::write(&path, text).unwrap();
    path
}

/// Retries `f` until it succeeds, up to 10 s (another node learns of a
/// change through an asynchronous notification).
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if std::time::Instant::now() > deadline => panic!("{what}: still {e}"),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(25)).await,
        }
    }
}
