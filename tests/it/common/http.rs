//! A minimal HTTP/1.1 client over a plain TCP connection: enough to ask
//! the frontend proxy for a page with a given Host header, with no client
//! library between the test and the bytes nginx sends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// 0 when the request failed (connection refused, reset, timeout).
    pub status: u16,
    pub body: String,
}

pub fn get(port: u16, host: &str, path: &str) -> Response {
    get_at(SocketAddr::from(([127, 0, 0, 1], port)), host, path)
}

/// GET from another address (a container's): a host that cannot be
/// reached answers status 0 within seconds rather than hanging.
pub fn get_at(addr: SocketAddr, host: &str, path: &str) -> Response {
    match try_get(addr, host, path) {
        Ok(r) => r,
        Err(e) => Response {
            status: 0,
            body: e.to_string(),
        },
    }
}

fn try_get(addr: SocketAddr, host: &str, path: &str) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response: {text:?}")))?;
    Ok(Response {
        status,
        body: body.to_string(),
    })
}
