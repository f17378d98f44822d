//! A tiny blocking HTTP/1.1 client over `TcpStream`, for asking a deploy on
//! this machine whether it is healthy and the instance metadata service who
//! we are: no TLS, no redirects, one request per connection, every step
//! under a time-out.

use std::io::Read;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// An answer: its status line without the version (`500 Internal Server
/// Error`), its status code, and its body (at most [`MAX_BODY`] bytes).
#[derive(Debug)]
pub(crate) struct Answer {
    pub status_line: String,
    pub code: u16,
    pub body: Vec<u8>,
}

/// What is read of a body at most: enough to quote the start of an error.
const MAX_BODY: usize = 64 * 1024;

/// `GET http://127.0.0.1:<port><path>`, all of it within `timeout`.
pub(crate) fn get_local(port: u16, path: &str, timeout: Duration) -> Result<Answer> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    request(addr, "GET", path, &[], timeout)
}

/// `method path` to `addr` with extra `headers` (`Name: value`) and an
/// empty body, all of it within `timeout`.
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    timeout: Duration,
) -> Result<Answer> {
    let deadline = Instant::now() + timeout;
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("cannot connect to {addr}"))?;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    s.set_write_timeout(Some(left()))?;
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: c2\r\nAccept: */*\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .with_context(|| format!("cannot send the request to {addr}"))?;
    // Read until the server closes (Connection: close), the body is
    // complete, or the deadline passes.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if Instant::now() >= deadline {
            if parse(&raw).is_ok() {
                break;
            }
            bail!("no answer from {addr} within {} s", timeout.as_secs_f32());
        }
        s.set_read_timeout(Some(left()))?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if raw.len() > MAX_BODY + 16 * 1024 || complete(&raw) {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if parse(&raw).is_ok() {
                    break;
                }
                return Err(e).with_context(|| format!("cannot read the answer from {addr}"));
            }
        }
    }
    parse(&raw).with_context(|| format!("bad answer from {addr}"))
}

fn head_end(raw: &[u8]) -> Option<usize> {
    raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Whether `raw` holds a whole answer with a Content-Length.
fn complete(raw: &[u8]) -> bool {
    let Some(end) = head_end(raw) else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    header(&head, "Content-Length")
        .and_then(|n| n.parse::<usize>().ok())
        .is_some_and(|n| raw.len() - end >= n)
}

fn parse(raw: &[u8]) -> Result<Answer> {
    let end = head_end(raw).context("the answer has no complete header")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let first = head.lines().next().unwrap_or("");
    let (version, status_line) = first.split_once(' ').unwrap_or((first, ""));
    if !version.starts_with("HTTP/") {
        bail!("not an HTTP answer: {:?}", truncate(first.as_bytes(), 80));
    }
    let code = status_line
        .split_whitespace()
        .next()
        .and_then(|c| c.parse::<u16>().ok())
        .with_context(|| format!("no status code in {first:?}"))?;
    let mut body = raw[end..].to_vec();
    if header(&head, "Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body);
    }
    if let Some(n) = header(&head, "Content-Length").and_then(|n| n.parse::<usize>().ok()) {
        body.truncate(n);
    }
    body.truncate(MAX_BODY);
    Ok(Answer {
        status_line: status_line.trim().to_string(),
        code,
        body,
    })
}

/// The data of a chunked body, as much of it as arrived.
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]);
        let size = size.split(';').next().unwrap_or("").trim();
        let Ok(n) = usize::from_str_radix(size, 16) else {
            break;
        };
        if n == 0 {
            break;
        }
        let data = &rest[eol + 2..];
        out.extend_from_slice(&data[..n.min(data.len())]);
        // A hostile size (ffffffffffffffff) must not overflow.
        rest = n
            .checked_add(2)
            .and_then(|end| data.get(end..))
            .unwrap_or(&[]);
    }
    out
}

/// The first `n` bytes of `bytes`, as text.
pub(crate) fn truncate(bytes: &[u8], n: usize) -> String {
    String::from_utf8_lossy(&bytes[..n.min(bytes.len())]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_line_and_body() {
        let a = parse(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\ndown!!")
            .unwrap();
        assert_eq!(a.status_line, "500 Internal Server Error");
        assert_eq!(a.code, 500);
        assert_eq!(a.body, b"down");
        let a = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(a.body, b"abcde");
        assert!(parse(b"SSH-2.0\r\n\r\n").is_err());
        let a =
            parse(b"HTTP/1.1 500 x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc")
                .unwrap();
        assert_eq!(a.body, b"abc");
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
