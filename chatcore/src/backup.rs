//! Encrypted backups of the data database, and restoring them.
//!
//! A backup is a consistent snapshot (SQLite's online backup, so the server
//! keeps running) of `c24.sqlite` only — never of the keyring, so it holds no
//! tenant key. It is encrypted with a fresh backup key (AES-256-GCM, in 1 MiB
//! chunks whose AAD names the backup, the chunk's index and whether it is the
//! last, so chunks cannot be reordered, dropped or truncated unnoticed); the
//! backup key is stored in the header wrapped by the KEK. Restoring puts the
//! data back beside the *current* keyring: a tenant whose key was destroyed
//! since the backup stays unreadable.
//!
//! Backups are kept 7 days: every backup run deletes older ones in its folder.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad as LcAad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::clock::{Millis, rfc3339};
use crate::crypto::envelope::random_bytes;
use crate::crypto::{Aad, CryptoError, Kek};
use crate::store::sqlite::DB_FILE;

/// Encrypted backups are kept this long (privacy policy §6).
pub const BACKUP_RETENTION_MS: Millis = 7 * 86_400_000;
const MAGIC: &[u8; 8] = b"C24BAK1\n";
const CHUNK: usize = 1 << 20;
const TAG_LEN: usize = 16;
/// File name extension of a backup.
pub const EXTENSION: &str = "c24bak";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("key: {0}")]
    Crypto(#[from] CryptoError),
    #[error("{path}: not a c24 backup, or damaged: {reason}")]
    Damaged { path: String, reason: String },
    #[error("{0}")]
    Refused(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The plaintext header line of a backup file (no secrets: the key is wrapped).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BackupHeader {
    pub id: String,
    /// ms since the epoch, by the clock of the process that made it.
    pub created_at_ms: Millis,
    pub created_at: String,
    /// The backup key, sealed by the KEK (base64).
    pub wrapped_key: String,
    pub chunk_bytes: usize,
}

/// What a backup run did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupReport {
    pub file: PathBuf,
    pub bytes: u64,
    /// Backups older than 7 days deleted from the folder.
    pub pruned: Vec<PathBuf>,
}

fn key_aad(id: &str) -> Aad<'_> {
    Aad {
        tenant: "-",
        table: "backups",
        row: id,
        column: "key",
    }
}

fn chunk_aad(id: &str, index: u64, last: bool) -> Vec<u8> {
    format!("c24-backup\u{1f}{id}\u{1f}{index}\u{1f}{}", u8::from(last)).into_bytes()
}

fn nonce(index: u64) -> Result<Nonce, BackupError> {
    // A fresh key per backup, so a counter nonce never repeats under one key.
    let mut n = [0u8; NONCE_LEN];
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::try_assume_unique_for_key(&n).map_err(|_| BackupError::Refused("nonce".into()))
}

/// Snapshots `data_dir`'s database into `out_dir` and prunes old backups.
pub fn create(
    data_dir: &Path,
    out_dir: &Path,
    kek: &Kek,
    now: Millis,
) -> Result<BackupReport, BackupError> {
    let db = data_dir.join(DB_FILE);
    if !db.exists() {
        return Err(BackupError::Refused(format!(
            "{} does not exist",
            db.display()
        )));
    }
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let id = uuid::Uuid::now_v7().simple().to_string();
    let stamp = chrono::DateTime::from_timestamp_millis(now)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ");
    let final_path = out_dir.join(format!("c24-{stamp}-{}.{EXTENSION}", &id[20..]));
    let snapshot = out_dir.join(format!(".{id}.snapshot"));
    let partial = out_dir.join(format!(".{id}.partial"));
    let result = (|| {
        // Consistent while the server writes: SQLite's online backup API.
        let src =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        src.backup(rusqlite::MAIN_DB, &snapshot, None)?;
        drop(src);
        encrypt_file(&snapshot, &partial, &id, kek, now)?;
        std::fs::rename(&partial, &final_path).map_err(io(&final_path))?;
        Ok::<_, BackupError>(())
    })();
    let _ = std::fs::remove_file(&snapshot);
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result?;
    let bytes = std::fs::metadata(&final_path)
        .map_err(io(&final_path))?
        .len();
    let pruned = prune(out_dir, now)?;
    Ok(BackupReport {
        file: final_path,
        bytes,
        pruned,
    })
}

fn encrypt_file(
    plain: &Path,
    out: &Path,
    id: &str,
    kek: &Kek,
    now: Millis,
) -> Result<(), BackupError> {
    let raw_key = random_bytes::<32>()?;
    let key =
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &raw_key).map_err(|_| CryptoError::Seal)?);
    let header = BackupHeader {
        id: id.to_string(),
        created_at_ms: now,
        created_at: rfc3339(now),
        wrapped_key: B64.encode(kek.seal(key_aad(id), &raw_key)?),
        chunk_bytes: CHUNK,
    };
    let mut input = std::fs::File::open(plain).map_err(io(plain))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(io(out))?;
    let header_line =
        serde_json::to_vec(&header).map_err(|e| BackupError::Refused(format!("header: {e}")))?;
    f.write_all(MAGIC).map_err(io(out))?;
    f.write_all(&header_line).map_err(io(out))?;
    f.write_all(b"\n").map_err(io(out))?;
    let total = input.metadata().map_err(io(plain))?.len();
    let mut done = 0u64;
    let mut index = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = read_full(&mut input, &mut buf).map_err(io(plain))?;
        done += n as u64;
        let last = done >= total;
        let mut chunk = buf[..n].to_vec();
        key.seal_in_place_append_tag(
            nonce(index)?,
            LcAad::from(chunk_aad(id, index, last)),
            &mut chunk,
        )
        .map_err(|_| CryptoError::Seal)?;
        f.write_all(&(chunk.len() as u32).to_be_bytes())
            .map_err(io(out))?;
        f.write_all(&chunk).map_err(io(out))?;
        index += 1;
        if last {
            break;
        }
    }
    f.sync_all().map_err(io(out))?;
    Ok(())
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads a backup's header.
pub fn header(path: &Path) -> Result<BackupHeader, BackupError> {
    let mut f = std::io::BufReader::new(std::fs::File::open(path).map_err(io(path))?);
    read_header(&mut f, path)
}

fn read_header(f: &mut impl std::io::BufRead, path: &Path) -> Result<BackupHeader, BackupError> {
    let damaged = |reason: &str| BackupError::Damaged {
        path: path.display().to_string(),
        reason: reason.to_string(),
    };
    let mut magic = [0u8; 8];
    f.read_exact(&mut magic).map_err(|_| damaged("too short"))?;
    if &magic != MAGIC {
        return Err(damaged("wrong magic"));
    }
    let mut line = Vec::new();
    f.read_until(b'\n', &mut line).map_err(io(path))?;
    serde_json::from_slice(line.trim_ascii_end()).map_err(|e| damaged(&format!("header: {e}")))
}

/// Decrypts a backup into `out` (a new file).
pub fn decrypt(path: &Path, kek: &Kek, out: &Path) -> Result<BackupHeader, BackupError> {
    let damaged = |reason: &str| BackupError::Damaged {
        path: path.display().to_string(),
        reason: reason.to_string(),
    };
    let mut f = std::io::BufReader::new(std::fs::File::open(path).map_err(io(path))?);
    let h = read_header(&mut f, path)?;
    let wrapped = B64
        .decode(&h.wrapped_key)
        .map_err(|_| damaged("wrapped key"))?;
    let raw_key = kek
        .open(key_aad(&h.id), &wrapped)
        .map_err(|_| damaged("the backup key does not open with this KEK"))?;
    let key =
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &raw_key).map_err(|_| CryptoError::Open)?);
    let mut w = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(io(out))?;
    let mut index = 0u64;
    loop {
        let mut len = [0u8; 4];
        f.read_exact(&mut len).map_err(|_| damaged("truncated"))?;
        let len = u32::from_be_bytes(len) as usize;
        if !(TAG_LEN..=h.chunk_bytes + TAG_LEN).contains(&len) {
            return Err(damaged("bad chunk length"));
        }
        let mut chunk = vec![0u8; len];
        f.read_exact(&mut chunk).map_err(|_| damaged("truncated"))?;
        // Try "not last" first; the last chunk authenticates only as last.
        let mut attempt = chunk.clone();
        let (plain_len, last) = match key.open_in_place(
            nonce(index)?,
            LcAad::from(chunk_aad(&h.id, index, false)),
            &mut attempt,
        ) {
            Ok(p) => (p.len(), false),
            Err(_) => {
                attempt = chunk;
                let p = key
                    .open_in_place(
                        nonce(index)?,
                        LcAad::from(chunk_aad(&h.id, index, true)),
                        &mut attempt,
                    )
                    .map_err(|_| damaged("a chunk failed to authenticate"))?;
                (p.len(), true)
            }
        };
        w.write_all(&attempt[..plain_len]).map_err(io(out))?;
        index += 1;
        if last {
            let mut rest = [0u8; 1];
            if f.read(&mut rest).map_err(io(path))? != 0 {
                return Err(damaged("data after the last chunk"));
            }
            break;
        }
    }
    w.sync_all().map_err(io(out))?;
    Ok(h)
}

/// Deletes backups in `dir` older than 7 days (by their header's time).
pub fn prune(dir: &Path, now: Millis) -> Result<Vec<PathBuf>, BackupError> {
    let mut pruned = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
            continue;
        }
        match header(&path) {
            Ok(h) if now - h.created_at_ms > BACKUP_RETENTION_MS => {
                std::fs::remove_file(&path).map_err(io(&path))?;
                tracing::info!(file = %path.display(), "backup older than 7 days deleted");
                pruned.push(path);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "not pruning an unreadable backup"),
        }
    }
    Ok(pruned)
}

/// Backups in `dir`, oldest first, with their headers.
pub fn list(dir: &Path) -> Result<Vec<(PathBuf, BackupHeader)>, BackupError> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().and_then(|e| e.to_str()) == Some(EXTENSION)
            && let Ok(h) = header(&path)
        {
            out.push((path, h));
        }
    }
    out.sort_by_key(|(_, h)| h.created_at_ms);
    Ok(out)
}

/// Restores a backup into `data_dir` (the server must be stopped). The
/// keyring is left as it is: keys destroyed since the backup stay destroyed.
pub fn restore(backup: &Path, data_dir: &Path, kek: &Kek) -> Result<BackupHeader, BackupError> {
    let db = data_dir.join(DB_FILE);
    let staging = data_dir.join(format!(".restore-{}", std::process::id()));
    let _ = std::fs::remove_file(&staging);
    let h = match decrypt(backup, kek, &staging) {
        Ok(h) => h,
        Err(e) => {
            let _ = std::fs::remove_file(&staging);
            return Err(e);
        }
    };
    let check = (|| {
        let c = rusqlite::Connection::open(&staging)?;
        let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        Ok::<_, BackupError>(ok)
    })();
    match check {
        Ok(ok) if ok == "ok" => {}
        Ok(other) => {
            let _ = std::fs::remove_file(&staging);
            return Err(BackupError::Damaged {
                path: backup.display().to_string(),
                reason: format!("integrity check: {other}"),
            });
        }
        Err(e) => {
            let _ = std::fs::remove_file(&staging);
            return Err(e);
        }
    }
    // The old WAL belongs to the old database.
    for suffix in ["-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            std::fs::remove_file(&p).map_err(io(&p))?;
        }
    }
    std::fs::rename(&staging, &db).map_err(io(&db))?;
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_older_than_seven_days_are_deleted_by_the_next_run() {
        let data = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let c = rusqlite::Connection::open(data.path().join(DB_FILE)).unwrap();
        c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES ('row');")
            .unwrap();
        drop(c);
        let (kek, _) = Kek::generate().unwrap();
        let t0 = 1_800_000_000_000;
        let first = create(data.path(), out.path(), &kek, t0).unwrap();
        let day = 86_400_000;
        // Seven days later it is still kept...
        let second = create(data.path(), out.path(), &kek, t0 + 7 * day).unwrap();
        assert!(second.pruned.is_empty());
        assert!(first.file.exists());
        // ...a moment past seven days it is gone; the newer one stays.
        let third = create(data.path(), out.path(), &kek, t0 + 7 * day + 1).unwrap();
        assert_eq!(third.pruned, vec![first.file.clone()]);
        assert!(!first.file.exists() && second.file.exists() && third.file.exists());
        assert_eq!(list(out.path()).unwrap().len(), 2);
    }

    #[test]
    fn encrypt_decrypt_round_trip_and_tamper_detection() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        let data: Vec<u8> = (0..(CHUNK * 2 + 123)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&plain, &data).unwrap();
        let (kek, _) = Kek::generate().unwrap();
        let enc = dir.path().join("x.c24bak");
        encrypt_file(&plain, &enc, "id1", &kek, 1_000).unwrap();
        let bytes = std::fs::read(&enc).unwrap();
        assert!(!bytes.windows(64).any(|w| w == &data[1000..1064]));
        let out = dir.path().join("out");
        decrypt(&enc, &kek, &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), data);

        // Truncated by a whole chunk: refused (the last-chunk flag).
        let header_len = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
        let header_len = header_len
            + bytes[header_len..]
                .iter()
                .position(|b| *b == b'\n')
                .unwrap()
            + 1;
        let first =
            4 + u32::from_be_bytes(bytes[header_len..header_len + 4].try_into().unwrap()) as usize;
        let cut = dir.path().join("cut.c24bak");
        std::fs::write(&cut, &bytes[..header_len + first]).unwrap();
        assert!(decrypt(&cut, &kek, &dir.path().join("o2")).is_err());
        // Another KEK: refused.
        let (other, _) = Kek::generate().unwrap();
        assert!(decrypt(&enc, &other, &dir.path().join("o3")).is_err());
        // A flipped byte: refused.
        let mut flipped = bytes.clone();
        let at = flipped.len() - 5;
        flipped[at] ^= 1;
        let f = dir.path().join("f.c24bak");
        std::fs::write(&f, &flipped).unwrap();
        assert!(decrypt(&f, &kek, &dir.path().join("o4")).is_err());
    }
}
