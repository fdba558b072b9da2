//! A minimal HTTP/1.1 client over a plain `TcpStream`: one request per connection
//! (`Connection: close`), the raw status, headers and body back. Tests use it where the
//! bytes on the wire are the point (a real socket, a real process, a real edge runtime).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a response may take before the request fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A response: status, headers (names lowercase) and body (de-chunked).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Reply {
    /// A header's value; empty when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// The loopback address of `port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `method target` with an optional JSON body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: Option<&str>,
) -> std::io::Result<Reply> {
    request(addr, method, target, &[], body.unwrap_or("").as_bytes())
}

/// [`http`] with extra request headers (the body is sent as JSON unless they name another
/// content type).
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    s.write_all(head.as_bytes())?;
    s.write_all(b"\r\n")?;
    // A server may answer (413) before reading all of a large body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    Ok(parse(&String::from_utf8_lossy(&raw)))
}

fn parse(raw: &str) -> Reply {
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.get(9..12))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let plain = parse("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Cache-Tier: popular\r\n\r\n{\"a\":1}");
        assert_eq!(plain.status, 201);
        assert_eq!(plain.header("x-cache-tier"), "popular");
        assert_eq!(plain.json()["a"], 1);
        let chunked =
            parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab\r\n\r\n3\r\ncde\r\n0\r\n\r\n");
        assert_eq!(chunked.body, "ab\r\ncde");
        assert_eq!(parse("garbage").status, 0);
    }

    #[test]
    fn talks_to_a_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            while !String::from_utf8_lossy(&seen).ends_with("{\"x\":1}") {
                let n = s.read(&mut buf).unwrap();
                seen.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok")
                .unwrap();
            String::from_utf8(seen).unwrap()
        });
        let reply = http(addr, "POST", "/v1/events?a=b", Some("{\"x\":1}")).unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (202, "ok"));
        let sent = server.join().unwrap();
        assert!(
            sent.starts_with("POST /v1/events?a=b HTTP/1.1\r\n"),
            "{sent}"
        );
        assert!(
            sent.contains("Content-Type: application/json\r\n"),
            "{sent}"
        );
        assert!(sent.contains("Content-Length: 7\r\n"), "{sent}");
    }
}
