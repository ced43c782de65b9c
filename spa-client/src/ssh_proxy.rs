//! The ssh side of `spa-client ssh-proxy`: once the door's port answered,
//! either relay stdin/stdout to the connection (`ProxyCommand`) or hand the
//! connected socket itself to ssh over stdout with SCM_RIGHTS
//! (`ProxyUseFdpass yes`). Knocking and waiting are `app`'s.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::thread;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};

/// Copies `input` to the connection and the connection to `output` until the
/// server closes it. When `input` ends, the connection's sending side is shut,
/// as `nc -N` does, and the server's remaining output is still copied.
pub fn relay(
    stream: TcpStream,
    mut input: impl Read + Send + 'static,
    mut output: impl Write,
) -> io::Result<()> {
    let mut to_server = stream.try_clone()?;
    let upstream = thread::spawn(move || {
        let copied = io::copy(&mut input, &mut to_server);
        let _ = to_server.shutdown(Shutdown::Write);
        copied
    });
    let mut from_server = stream;
    let down = copy_flushing(&mut from_server, &mut output);
    // The server closed: whatever ssh still writes has nowhere to go.
    let _ = from_server.shutdown(Shutdown::Both);
    down?;
    drop(upstream);
    Ok(())
}

/// Copies until end of input, flushing after every chunk: stdout is
/// line-buffered, and ssh's binary packets must not wait for a newline.
fn copy_flushing(input: &mut impl Read, output: &mut impl Write) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return output.flush(),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        output.write_all(&buf[..n])?;
        output.flush()?;
    }
}

/// Sends the connected socket over the Unix socket `channel` (ssh's end of
/// the ProxyCommand's stdout when `ProxyUseFdpass yes`), with one byte of data
/// as sendmsg needs.
pub fn pass_fd(channel: BorrowedFd<'_>, stream: &TcpStream) -> io::Result<()> {
    let fds = [stream.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let data = [IoSlice::new(&[0u8])];
    sendmsg::<UnixAddr>(channel.as_raw_fd(), &data, &cmsg, MsgFlags::empty(), None)
        .map_err(io::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    use nix::sys::stat::fstat;
    use std::io::Cursor;
    use std::net::TcpListener;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn relay_carries_both_directions_and_half_closes() -> io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = thread::spawn(move || -> io::Result<Vec<u8>> {
            let (mut conn, _) = listener.accept()?;
            let mut got = Vec::new();
            conn.read_to_end(&mut got)?; // ends when the relay shuts its write side
            conn.write_all(b"server says hi")?;
            Ok(got)
        });
        let stream = TcpStream::connect(addr)?;
        let mut out = Vec::new();
        relay(stream, Cursor::new(b"client says hi".to_vec()), &mut out)?;
        let got = server
            .join()
            .map_err(|_| io::Error::other("server panicked"))??;
        assert_eq!(got, b"client says hi");
        assert_eq!(out, b"server says hi");
        Ok(())
    }

    #[test]
    fn the_passed_fd_is_the_connected_socket() -> io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let stream = TcpStream::connect(listener.local_addr()?)?;
        let (ours, theirs) = UnixStream::pair()?;
        pass_fd(ours.as_fd(), &stream)?;
        let mut byte = [0u8; 1];
        let mut iov = [io::IoSliceMut::new(&mut byte)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<UnixAddr>(
            theirs.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .map_err(io::Error::from)?;
        let mut received = None;
        for c in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                received = fds.first().copied();
            }
        }
        let fd = received.ok_or_else(|| io::Error::other("no fd received"))?;
        // A new descriptor for the very same socket (same inode).
        let passed = fstat(fd).map_err(io::Error::from)?;
        let original = fstat(stream.as_raw_fd()).map_err(io::Error::from)?;
        let _ = nix::unistd::close(fd);
        assert_ne!(fd, stream.as_raw_fd());
        assert_eq!(
            (passed.st_dev, passed.st_ino),
            (original.st_dev, original.st_ino)
        );
        Ok(())
    }

    /// A line-buffered sink: bytes pass on only at flush.
    struct Flushed {
        pending: Vec<u8>,
        passed: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl Write for Flushed {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.pending.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            let mut passed = self
                .passed
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?;
            passed.append(&mut self.pending);
            Ok(())
        }
    }

    /// Gives one chunk, then (like a server waiting for the answer) fails
    /// unless that chunk already reached the far side of the sink.
    struct Peer {
        reads: usize,
        passed: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl Read for Peer {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            if self.reads == 1 {
                buf[..6].copy_from_slice(b"kex\x00\x01\x02");
                return Ok(6);
            }
            let passed = self
                .passed
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?;
            if passed.as_slice() == b"kex\x00\x01\x02" {
                Ok(0)
            } else {
                Err(io::Error::other("the first chunk was still buffered"))
            }
        }
    }

    #[test]
    fn each_chunk_is_flushed_before_the_next_read() -> io::Result<()> {
        let passed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut sink = Flushed {
            pending: Vec::new(),
            passed: passed.clone(),
        };
        let mut peer = Peer { reads: 0, passed };
        copy_flushing(&mut peer, &mut sink)
    }
}
