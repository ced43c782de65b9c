//! The opt-in Prometheus listener (`metrics_listen = "127.0.0.1:9105"`): a
//! loopback-only TCP socket answering `GET /metrics` with exactly the text
//! `spad status --prometheus` prints ([`Status::to_prometheus`], taken from
//! the main loop through the control socket's hand-off), 404 for other paths.
//! One connection at a time, the request head read with a size bound and a
//! timeout; the thread blocks in `accept`, so an idle spad never wakes.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use crate::control::{ControlReply, ControlRequest, Request, Status};

/// Longest request head read, bytes (a scraper sends a few hundred).
pub const MAX_REQUEST_LEN: usize = 8192;
/// How long a client may take to send its request, and the main loop to answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks a `metrics_listen` value: an `ADDR:PORT` on loopback.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text.parse().map_err(|_| {
        format!(
            "metrics_listen: {text:?} is not ADDR:PORT (e.g. \"127.0.0.1:9105\" or \"[::1]:9105\")"
        )
    })?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "metrics_listen: {} is not a loopback address; the listener is for a local \
             scraper only (use 127.0.0.1 or ::1, and a reverse proxy if it must be reached \
             from elsewhere)",
            addr.ip()
        ));
    }
    Ok(addr)
}

/// The HTTP response to one request head; `status` asks the main loop.
pub fn respond(head: &[u8], status: impl FnOnce() -> Option<Status>) -> Vec<u8> {
    let line = head
        .split(|b| *b == b'\n')
        .next()
        .map(|l| String::from_utf8_lossy(l).trim_end().to_owned())
        .unwrap_or_default();
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let valid = matches!(version, Some(v) if v.starts_with("HTTP/1.")) && parts.next().is_none();
    let path = target.map(|t| t.split('?').next().unwrap_or(t));
    match (valid, method, path) {
        (false, ..) => reply("400 Bad Request", "text/plain", "bad request\n"),
        (true, Some("GET"), Some("/metrics")) => match status() {
            Some(s) => reply(
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &s.to_prometheus(),
            ),
            None => reply(
                "503 Service Unavailable",
                "text/plain",
                "spad did not answer in time\n",
            ),
        },
        (true, Some("GET"), _) => reply("404 Not Found", "text/plain", "only /metrics here\n"),
        (true, ..) => reply("405 Method Not Allowed", "text/plain", "only GET\n"),
    }
}

fn reply(code: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {code}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads up to the end of the request head (a blank line), at most
/// `MAX_REQUEST_LEN` bytes; what was read when the client stops or the bound is hit.
fn read_head(stream: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while head.len() < MAX_REQUEST_LEN {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break;
        }
    }
    head.truncate(MAX_REQUEST_LEN);
    Ok(head)
}

/// The bound listener.
#[derive(Debug)]
pub struct MetricsListener {
    listener: TcpListener,
}

impl MetricsListener {
    /// Binds `addr` (checked to be loopback by the config).
    pub fn bind(addr: SocketAddr) -> io::Result<MetricsListener> {
        Ok(MetricsListener {
            listener: TcpListener::bind(addr)?,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves connections on a thread named `metrics`, one at a time; a status
    /// request goes to `handoff` (false once the main loop is gone, ending the thread).
    pub fn spawn<F>(self, handoff: F) -> io::Result<std::thread::JoinHandle<()>>
    where
        F: Fn(ControlRequest) -> bool + Send + 'static,
    {
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for conn in self.listener.incoming() {
                    let Ok(stream) = conn else { continue };
                    if !serve(stream, &handoff) {
                        return;
                    }
                }
            })
    }
}

/// Answers one connection; false once the main loop is gone.
fn serve<F: Fn(ControlRequest) -> bool>(mut stream: TcpStream, handoff: &F) -> bool {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Ok(head) = read_head(&mut stream) else {
        return true;
    };
    let mut alive = true;
    let response = respond(&head, || {
        let (tx, rx) = mpsc::channel();
        alive = handoff(ControlRequest {
            kind: Request::Status,
            reply: tx,
        });
        match rx.recv_timeout(IO_TIMEOUT) {
            Ok(ControlReply::Status(s)) => Some(s),
            _ => None,
        }
    });
    let _ = stream.write_all(&response);
    alive
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::control::CaptureStatus;

    fn sample() -> Status {
        Status {
            server_id: "gw1".into(),
            started_unix: 1_764_587_899,
            open_doors: vec![],
            granted: 3,
            refused: BTreeMap::from([("clock".to_owned(), 2), ("hint".to_owned(), 12)]),
            overload: 0,
            capture: CaptureStatus::default(),
            keys_loaded: 2,
            last_reload: None,
        }
    }

    fn text(r: Vec<u8>) -> String {
        String::from_utf8(r).unwrap_or_default()
    }

    #[test]
    fn get_metrics_is_the_status_prometheus_text() {
        let r = text(respond(
            b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n",
            || Some(sample()),
        ));
        let body = sample().to_prometheus();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Type: text/plain; version=0.0.4"), "{r}");
        assert!(
            r.contains(&format!("Content-Length: {}\r\n", body.len())),
            "{r}"
        );
        assert!(r.ends_with(&format!("\r\n\r\n{body}")), "{r}");
        assert!(body.contains("spad_refused_total{reason=\"clock\"} 2\n"));
        // A query string is ignored, as scrapers may add one.
        let r = text(respond(b"GET /metrics?x=1 HTTP/1.0\n\n", || Some(sample())));
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    }

    #[test]
    fn other_paths_methods_and_junk_are_refused_without_asking_the_main_loop() {
        let never = || -> Option<Status> { panic!("the main loop was asked") };
        for (head, code) in [
            (&b"GET / HTTP/1.1\r\n\r\n"[..], "404 Not Found"),
            (b"GET /metricsx HTTP/1.1\r\n\r\n", "404 Not Found"),
            (b"POST /metrics HTTP/1.1\r\n\r\n", "405 Method Not Allowed"),
            (b"GET /metrics\r\n\r\n", "400 Bad Request"),
            (b"\x00\x01\x02", "400 Bad Request"),
            (b"", "400 Bad Request"),
        ] {
            let r = text(respond(head, never));
            assert!(
                r.starts_with(&format!("HTTP/1.1 {code}\r\n")),
                "{head:?}: {r}"
            );
        }
    }

    #[test]
    fn no_answer_from_the_main_loop_is_a_503() {
        let r = text(respond(b"GET /metrics HTTP/1.1\r\n\r\n", || None));
        assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{r}");
    }

    #[test]
    fn the_request_read_is_bounded() {
        let mut endless = std::io::repeat(b'a');
        let head = read_head(&mut endless).unwrap_or_default();
        assert_eq!(head.len(), MAX_REQUEST_LEN);
        assert!(text(respond(&head, || None)).starts_with("HTTP/1.1 400"));
    }

    #[test]
    fn only_loopback_addresses_are_accepted() {
        assert_eq!(
            parse_listen("127.0.0.1:9105"),
            Ok(([127, 0, 0, 1], 9105).into())
        );
        assert!(parse_listen("[::1]:9105").is_ok());
        let err = parse_listen("0.0.0.0:9105").err().unwrap_or_default();
        assert!(err.contains("0.0.0.0 is not a loopback address"), "{err}");
        assert!(parse_listen("192.168.1.10:9105").is_err());
        assert!(parse_listen("localhost:9105")
            .err()
            .unwrap_or_default()
            .contains("not ADDR:PORT"));
    }

    #[test]
    fn the_config_refuses_a_listener_off_loopback_with_file_line_and_column() {
        let parse = |listen: &str| {
            crate::config::Config::parse(
                std::path::Path::new("/etc/spad.toml"),
                &format!("server_id = \"gw1\"\nmetrics_listen = \"{listen}\"\n"),
            )
        };
        let err = parse("0.0.0.0:9105")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("/etc/spad.toml:2:18: metrics_listen: 0.0.0.0 is not a loopback"),
            "{err}"
        );
        let ok = parse("127.0.0.1:9105").map(|c| c.metrics_listen);
        assert_eq!(ok.ok().flatten(), Some(([127, 0, 0, 1], 9105).into()));
        let off = crate::config::Config::parse(std::path::Path::new("x"), "server_id = \"gw1\"\n");
        assert_eq!(
            off.ok().and_then(|c| c.metrics_listen),
            None,
            "off by default"
        );
    }

    #[test]
    fn serves_over_a_real_loopback_socket() {
        let listener =
            MetricsListener::bind(([127, 0, 0, 1], 0).into()).unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        listener
            .spawn(|req: ControlRequest| {
                let _ = req.reply.send(ControlReply::Status(sample()));
                true
            })
            .unwrap_or_else(|e| panic!("{e}"));
        let get = |path: &str| {
            let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
            let _ = s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        };
        assert!(get("/metrics").contains("spad_granted_total 3\n"));
        assert!(get("/nope").starts_with("HTTP/1.1 404"));
    }
}
