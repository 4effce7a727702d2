//! `c24-loadgen sink`: a trivial HTTP/1.1 target for calibration and tests.
//! Answers 200 with an empty body to every request (keep-alive, bodies
//! drained, pipelining allowed). With a stall configured it stops answering
//! for `stall` at every multiple of `every` since it started, the way a
//! garbage-collecting or fsync-bound server does, so coordinated omission
//! shows up in a client that ignores intended send times.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
const RESPONSE_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
/// Largest request head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Periodic stalls: silent for `stall` starting at every `every` since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    pub stall: Duration,
    pub every: Duration,
}

impl Stall {
    /// When the stall covering `t` (time since start) ends, if `t` is in one.
    pub fn until(&self, t: Duration) -> Option<Duration> {
        if self.every.is_zero() || self.stall.is_zero() {
            return None;
        }
        let every = self.every.as_nanos();
        let k = t.as_nanos() / every;
        if k == 0 {
            return None;
        }
        let window_start = Duration::from_nanos(u64::try_from(k * every).ok()?);
        let end = window_start + self.stall;
        (t < end).then_some(end)
    }
}

/// Serves until the listener fails; every connection is its own task.
pub async fn serve(listener: TcpListener, stall: Option<Stall>) -> std::io::Result<()> {
    let started = Instant::now();
    loop {
        let (sock, _) = listener.accept().await?;
        let _ = sock.set_nodelay(true);
        tokio::spawn(async move {
            if let Err(e) = connection(sock, stall, started).await {
                tracing::debug!(error = %e, "sink connection ended");
            }
        });
    }
}

/// Binds `addr` (port 0 picks one).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

async fn connection(
    mut sock: TcpStream,
    stall: Option<Stall>,
    started: Instant,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut filled = 0usize;
    // Body bytes still to skip from the request being drained.
    let mut skip = 0usize;
    let mut out = Vec::with_capacity(4096);
    loop {
        if filled == buf.len() {
            if buf.len() >= MAX_HEAD {
                sock.write_all(BAD_REQUEST).await?;
                return Ok(());
            }
            buf.resize(buf.len() * 2, 0);
        }
        let n = sock.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        let mut pos = 0usize;
        let mut close = false;
        loop {
            if skip > 0 {
                let take = skip.min(filled - pos);
                skip -= take;
                pos += take;
                if skip > 0 {
                    break;
                }
            }
            if pos >= filled {
                break;
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf[pos..filled]) {
                Ok(httparse::Status::Complete(head)) => {
                    let mut length = 0usize;
                    for h in req.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            length = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                        } else if h.name.eq_ignore_ascii_case("connection")
                            && h.value.eq_ignore_ascii_case(b"close")
                        {
                            close = true;
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            // Chunked bodies are not drained; say so and stop.
                            sock.write_all(BAD_REQUEST).await?;
                            return Ok(());
                        }
                    }
                    pos += head;
                    skip = length;
                    out.extend_from_slice(if close { RESPONSE_CLOSE } else { RESPONSE });
                    if close {
                        break;
                    }
                }
                Ok(httparse::Status::Partial) => break,
                Err(_) => {
                    sock.write_all(BAD_REQUEST).await?;
                    return Ok(());
                }
            }
        }
        buf.copy_within(pos..filled, 0);
        filled -= pos;
        if !out.is_empty() {
            if let Some(s) = stall
                && let Some(end) = s.until(started.elapsed())
            {
                tokio::time::sleep_until((started + end).into()).await;
            }
            sock.write_all(&out).await?;
            out.clear();
        }
        if close {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stall_windows_start_at_each_multiple() {
        let s = Stall {
            stall: Duration::from_millis(500),
            every: Duration::from_secs(2),
        };
        assert_eq!(s.until(Duration::from_millis(100)), None);
        assert_eq!(s.until(Duration::from_millis(1999)), None);
        assert_eq!(
            s.until(Duration::from_millis(2100)),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(s.until(Duration::from_millis(2600)), None);
        assert_eq!(
            s.until(Duration::from_millis(4000)),
            Some(Duration::from_millis(4500))
        );
    }
}
