//! A long-running child process (spad, a listener, tcpdump) whose output is
//! collected line by line, that the harness can signal, wait on, and that is
//! killed when dropped. When a test panics, the child's output is printed so
//! the failure shows what the daemon said.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::{io, E2eError, Result};

#[derive(Debug, Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

impl Lines {
    fn push(&self, line: String) {
        if let Ok(mut l) = self.lines.lock() {
            l.push(line);
        }
        self.grew.notify_all();
    }

    fn snapshot(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// A child process with captured stdout+stderr lines; SIGKILLed on drop.
#[derive(Debug)]
pub struct NsChild {
    label: String,
    child: Child,
    lines: Arc<Lines>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl NsChild {
    /// Spawns `cmd` with piped stdout/stderr; `label` names it in messages.
    pub fn spawn(label: &str, mut cmd: Command) -> Result<NsChild> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(io(format!("starting {label} ({cmd:?})")))?;
        let lines = Arc::new(Lines::default());
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(read_lines(out, Arc::clone(&lines)));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(read_lines(err, Arc::clone(&lines)));
        }
        Ok(NsChild {
            label: label.to_owned(),
            child,
            lines,
            readers,
            status: None,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line printed so far (ANSI colour codes removed).
    pub fn lines(&self) -> Vec<String> {
        self.lines.snapshot()
    }

    /// Waits until a line matching `pred` has been printed; fails if the
    /// process exits first or `timeout` passes.
    pub fn wait_for_line(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.lines.snapshot().into_iter().find(|l| pred(l)) {
                return Ok(found);
            }
            if let Some(status) = self.try_status()? {
                self.join_readers();
                if let Some(found) = self.lines.snapshot().into_iter().find(|l| pred(l)) {
                    return Ok(found);
                }
                return Err(E2eError::ExitedEarly {
                    what: format!("{} (while waiting for {what})", self.label),
                    status: status.to_string(),
                    output: self.lines.snapshot().join("\n"),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(E2eError::Timeout {
                    what: format!(
                        "{what} from {}; its output so far:\n{}",
                        self.label,
                        self.lines().join("\n")
                    ),
                    after: timeout,
                });
            }
            let wait = (deadline - now).min(Duration::from_millis(50));
            if let Ok(guard) = self.lines.lines.lock() {
                let _ = self.lines.grew.wait_timeout(guard, wait);
            }
        }
    }

    /// Sends a signal to the process.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        let pid = Pid::from_raw(self.child.id() as i32);
        kill(pid, signal).map_err(|e| E2eError::Io {
            what: format!("sending {signal} to {}", self.label),
            source: std::io::Error::from(e),
        })
    }

    /// The exit status, if the process has exited.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .map_err(io(format!("polling {}", self.label)))?;
        }
        Ok(self.status)
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status()? {
                self.join_readers();
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(E2eError::Timeout {
                    what: format!("{} to exit", self.label),
                    after: timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs the process (like `kill -9`) and reaps it.
    pub fn kill9(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.try_status()? {
            return Ok(status);
        }
        self.signal(Signal::SIGKILL)?;
        self.wait_exit(Duration::from_secs(5))
    }

    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

impl Drop for NsChild {
    fn drop(&mut self) {
        if matches!(self.try_status(), Ok(None)) {
            let _ = self.signal(Signal::SIGKILL);
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("----- output of {} -----", self.label);
            for line in self.lines.snapshot() {
                eprintln!("{line}");
            }
            eprintln!("----- end of {} -----", self.label);
        }
    }
}

fn read_lines(stream: impl Read + Send + 'static, lines: Arc<Lines>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    lines.push(strip_ansi(text.trim_end_matches(['\n', '\r'])));
                }
            }
        }
    })
}

/// Removes ANSI escape sequences (`ESC [ ... letter`), so log lines match as plain text.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_codes_are_removed_from_log_lines() {
        let coloured =
            "\u{1b}[32m INFO\u{1b}[0m door opened \u{1b}[3mdoor\u{1b}[0m\u{1b}[2m=\u{1b}[0mssh";
        assert_eq!(strip_ansi(coloured), " INFO door opened door=ssh");
    }
}
