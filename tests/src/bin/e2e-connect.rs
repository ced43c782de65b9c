//! e2e-connect HOST PORT TIMEOUT_MS: tries one TCP connect. Exit 0 when it
//! connects and reads the listener's "hello"; 1 when refused, timed out or
//! greeted otherwise; 2 on bad arguments.

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(host), Some(port), Some(ms)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: e2e-connect HOST PORT TIMEOUT_MS");
        return ExitCode::from(2);
    };
    let (Ok(host), Ok(port), Ok(ms)) = (
        host.parse::<IpAddr>(),
        port.parse::<u16>(),
        ms.parse::<u64>(),
    ) else {
        eprintln!("e2e-connect: HOST must be an IP address, PORT 1-65535, TIMEOUT_MS a number");
        return ExitCode::from(2);
    };
    let timeout = Duration::from_millis(ms);
    let addr = SocketAddr::new(host, port);
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(mut conn) => {
            let _ = conn.set_read_timeout(Some(timeout));
            let mut greeting = [0u8; 6];
            match conn.read_exact(&mut greeting) {
                Ok(()) if &greeting == b"hello\n" => {
                    println!("connected to {addr}");
                    ExitCode::SUCCESS
                }
                _ => {
                    println!("connected to {addr} but got no greeting");
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            println!("no connection to {addr}: {e}");
            ExitCode::from(1)
        }
    }
}
