//! Runs one external program for the firewall (nft, iptables, an
//! operator's command): argv only, never a shell; optionally inside a
//! network namespace via `ip netns exec`; stdin fed from a string; stdout
//! and stderr captured (bounded); killed with its whole process group when
//! it runs past its time limit. Knows nothing of doors or rules.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::error::FirewallError;

/// How much of stdout/stderr is kept; the rest is read and thrown away.
const OUTPUT_CAP: usize = 16 * 1024;
/// How long to wait for stdout/stderr to close once the child has exited
/// (a grandchild may still hold them).
const OUTPUT_GRACE: Duration = Duration::from_millis(300);

/// What a finished program left behind.
#[derive(Debug)]
pub(crate) struct Finished {
    /// The command line, shell-quoted for reading.
    pub command: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stdout, lossily decoded, at most [`OUTPUT_CAP`] bytes.
    pub stdout: String,
    /// Its stderr, lossily decoded, at most [`OUTPUT_CAP`] bytes.
    pub stderr: String,
}

impl Finished {
    /// Turns a non-zero exit into [`FirewallError::Failed`].
    pub fn success(self) -> Result<Finished, FirewallError> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(FirewallError::Failed {
                command: self.command,
                status: self.status,
                stderr: self.stderr.trim().to_owned(),
            })
        }
    }
}

/// Starts programs, inside `netns` when one is set.
#[derive(Debug, Clone)]
pub(crate) struct Runner {
    netns: Option<String>,
}

impl Runner {
    pub fn new(netns: Option<String>) -> Runner {
        Runner { netns }
    }

    /// The argv actually executed: `ip netns exec NS` + `argv` in a namespace.
    fn full_argv(&self, argv: &[String]) -> Vec<String> {
        let mut full = Vec::with_capacity(argv.len() + 4);
        if let Some(ns) = &self.netns {
            full.extend(["ip", "netns", "exec", ns.as_str()].map(str::to_owned));
        }
        full.extend(argv.iter().cloned());
        full
    }

    /// Runs `argv` to completion (or until `timeout`), feeding `stdin`.
    /// Only a failure to start or a timeout is an error here; look at
    /// [`Finished::status`] or call [`Finished::success`].
    pub fn run(
        &self,
        argv: &[String],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<Finished, FirewallError> {
        let full = self.full_argv(argv);
        let command = quote_command(&full);
        let Some((program, args)) = full.split_first() else {
            return Err(FirewallError::Spawn {
                command,
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"),
            });
        };
        let mut child = Command::new(program)
            .args(args)
            .env("LC_ALL", "C")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|source| FirewallError::Spawn {
                command: command.clone(),
                source,
            })?;

        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let text = text.to_owned();
            // A writer thread, so a child that does not read cannot block us
            // past the timeout. Write errors show up as the child's failure.
            thread::spawn(move || {
                let _ = pipe.write_all(text.as_bytes());
            });
        }
        let stdout = child.stdout.take().map(read_bounded);
        let stderr = child.stderr.take().map(read_bounded);

        let status = match wait_until(&mut child, Instant::now() + timeout) {
            Some(status) => status,
            None => {
                kill_group(&mut child);
                return Err(FirewallError::TimedOut { command, timeout });
            }
        };
        let collect = |rx: Option<mpsc::Receiver<Vec<u8>>>| {
            rx.and_then(|rx| rx.recv_timeout(OUTPUT_GRACE).ok())
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default()
        };
        Ok(Finished {
            command,
            status,
            stdout: collect(stdout),
            stderr: collect(stderr),
        })
    }

    /// [`Runner::run`], then any non-zero exit is an error.
    pub fn run_ok(
        &self,
        argv: &[String],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<Finished, FirewallError> {
        self.run(argv, stdin, timeout)?.success()
    }
}

/// Polls the child until it exits or `deadline` passes (then `None`).
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    let mut pause = Duration::from_micros(200);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            // try_wait only fails if the child was already reaped: treat
            // as a hang so the caller kills what may be left.
            Err(_) => return None,
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Kills the child's whole process group, then reaps the child.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // The child leads its own group (process_group(0)); this also gets
        // whatever it started. ESRCH (already gone) is fine.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads a pipe to its end on a thread, keeping the first [`OUTPUT_CAP`]
/// bytes; the result arrives on the returned channel.
fn read_bounded(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = OUTPUT_CAP.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        let _ = tx.send(kept);
    });
    rx
}

/// A command line as a person would type it in a shell, for messages.
pub(crate) fn quote_command(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c));
            if plain {
                arg.clone()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first `max` characters of `text`, trimmed, on one line, for logs.
pub(crate) fn brief(text: &str, max: usize) -> String {
    let one_line: String = text.trim().replace('\n', " | ");
    match one_line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn argv(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn captures_status_stdout_and_stderr() {
        let done = Runner::new(None)
            .run(
                &argv(&["sh", "-c", "cat; echo err >&2; exit 3"]),
                Some("fed via stdin"),
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stdout, "fed via stdin");
        assert_eq!(done.stderr.trim(), "err");
        let err = done.success().unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("exit status: 3") && text.contains("err"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_program_is_a_spawn_error_naming_it() {
        let err = Runner::new(None)
            .run(
                &argv(&["/nonexistent/spa-nft"]),
                None,
                Duration::from_secs(1),
            )
            .unwrap_err();
        assert!(matches!(err, FirewallError::Spawn { .. }));
        assert!(err.to_string().contains("/nonexistent/spa-nft"));
    }

    #[test]
    fn a_hanging_program_and_its_children_are_killed() {
        let started = Instant::now();
        let err = Runner::new(None)
            .run(
                &argv(&["sh", "-c", "sleep 10 & sleep 10"]),
                None,
                Duration::from_millis(300),
            )
            .unwrap_err();
        assert!(matches!(err, FirewallError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn quoting_shows_arguments_as_typed() {
        assert_eq!(
            quote_command(&argv(&["nft", "-f", "-", "a b", "it's"])),
            r"nft -f - 'a b' 'it'\''s'"
        );
        assert_eq!(brief("a\nbcdef", 4), "a | ...");
    }
}
