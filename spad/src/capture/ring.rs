//! The capture socket's receive ring: a TPACKET_V3 `PACKET_RX_RING` mapped into spad,
//! into which the kernel writes every frame the BPF filter accepts. Frames are handed
//! over a whole block at a time (the block's status word flips to `TP_STATUS_USER`), so
//! under a flood spad reads dozens of frames per block without a system call; it
//! `poll`s the socket only when the block it waits for still belongs to the kernel,
//! and gives each block back (status `TP_STATUS_KERNEL`) once its last frame is read.
//!
//! Sizes, and why (an SPA datagram has 100 bytes of payload; each frame in a block
//! costs its bytes plus 82 bytes of headers, 16-byte aligned: 224 bytes in all):
//! - [`RETIRE_TIMEOUT_MS`] 1: a block that is not full is handed over when this timer
//!   (in the kernel) fires, so it bounds the delay a lone knock gets from the ring
//!   (measured on `lo`: ~0.9 ms, at most ~1.1 ms); 1 ms is the smallest the kernel
//!   takes; a longer timeout would add its whole length to every lone knock. The
//!   timer hands over only a block with at least one frame in it: with no packet
//!   spad's thread is never woken (idle wake-ups stay 0/s). The kernel's timer itself
//!   (an hrtimer, `prb_retire_rx_blk_timer_expired`) stays armed and expires every
//!   millisecond per capture socket even when idle; that is kernel work in softirq,
//!   no context switch of spad's.
//! - [`BLOCK_SIZE`] 16 KiB: 72 such frames, so under a flood spad reads 72 frames
//!   per wake-up, and at 100k pkt/s a block fills before the 1-ms timer would hand it
//!   over half empty (a block retired early wastes the rest of its space when spad
//!   falls behind). Frames longer than a block (~16 KB, far above any SPA datagram or
//!   knock) are cut by the kernel and skipped as truncated.
//! - [`BLOCK_COUNT`] 32: 512 KiB in all, ~2200 small frames, i.e. ~20 ms of a
//!   100k pkt/s flood during which spad may be descheduled without a drop. The kernel
//!   allocates and zeroes the whole ring when it is set up and maps every page into
//!   spad at once, so all 512 KiB count in spad's RSS from the start (the idle goal
//!   is 4 MB); doubling it would buy 20 ms more of stall for another 512 KiB. (Without
//!   a ring, the 8 MiB receive buffer is only a limit, but each queued small frame
//!   costs a ~1 KiB socket buffer there.)
//!
//! Every frame in a handed-over block is checked against the block's bounds before
//! a byte of it is read, so a malformed block can never make spad read outside the
//! ring.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::ops::Range;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, Ordering};

use libc::{c_int, c_void};

/// Bytes per block (a multiple of the page size; see the module doc).
pub const BLOCK_SIZE: usize = 16 << 10;
/// Blocks in the ring (see the module doc).
pub const BLOCK_COUNT: usize = 32;
/// Milliseconds after which the kernel hands over a block that is not full.
pub const RETIRE_TIMEOUT_MS: u32 = 1;
/// Only used by the kernel's size arithmetic for TPACKET_V3 (frames are packed).
const FRAME_SIZE: usize = 2048;

/// Offset of the `sockaddr_ll` after each frame's `tpacket3_hdr`.
const ADDRESS_OFFSET: usize = align(mem::size_of::<libc::tpacket3_hdr>());

/// `TPACKET_ALIGN` as a `const fn`.
const fn align(len: usize) -> usize {
    (len + libc::TPACKET_ALIGNMENT - 1) & !(libc::TPACKET_ALIGNMENT - 1)
}

/// What the next look into the ring found.
#[derive(Debug, PartialEq, Eq)]
pub enum RingFrame {
    /// A frame at this range of the ring, valid until the next call to `next_frame`.
    Frame(Range<usize>),
    /// A frame we never deliver: an outgoing copy, or cut short by the block size.
    Skipped,
    /// The block we wait for still belongs to the kernel.
    Nothing,
}

/// Where we are in the block handed over to us.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    /// Offset of the next frame's `tpacket3_hdr` within the block.
    offset: usize,
    /// Frames left in the block.
    remaining: u32,
}

/// The mapped ring. Owned by the [`super::Capture`] that reads it.
#[derive(Debug)]
pub struct Ring {
    map: NonNull<u8>,
    /// Index of the block being read, or waited for.
    block: usize,
    /// `Some` while the block is ours.
    cursor: Option<Cursor>,
}

// SAFETY: the mapping is owned by this value alone (no copies of the pointer escape;
// frames are lent out as slices borrowing `&self`), so moving it to another thread is
// as sound as moving a `Vec<u8>`.
unsafe impl Send for Ring {}

impl Ring {
    /// Switches `socket` to TPACKET_V3, asks for the ring and maps it. On an error the
    /// socket may be left with a ring it cannot use: close it.
    pub fn set_up(socket: BorrowedFd<'_>) -> io::Result<Ring> {
        let version = libc::tpacket_versions::TPACKET_V3 as c_int;
        set_option(socket, libc::PACKET_VERSION, &version)?;
        let request = libc::tpacket_req3 {
            tp_block_size: to_uint(BLOCK_SIZE),
            tp_block_nr: to_uint(BLOCK_COUNT),
            tp_frame_size: to_uint(FRAME_SIZE),
            tp_frame_nr: to_uint(BLOCK_SIZE / FRAME_SIZE * BLOCK_COUNT),
            tp_retire_blk_tov: RETIRE_TIMEOUT_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        set_option(socket, libc::PACKET_RX_RING, &request)?;
        // SAFETY: a fresh shared mapping of the socket's ring at an address the kernel
        // chooses; nothing else in the process uses that range. The result is checked.
        let map = unsafe {
            libc::mmap(
                ptr::null_mut(),
                BLOCK_SIZE * BLOCK_COUNT,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                socket.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map =
            NonNull::new(map.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        Ok(Ring {
            map,
            block: 0,
            cursor: None,
        })
    }

    /// The next frame of the block handed over to us, giving each finished block back
    /// to the kernel. Never blocks.
    pub fn next_frame(&mut self) -> RingFrame {
        loop {
            let Some(cursor) = self.cursor else {
                if !self.block_is_ours() {
                    return RingFrame::Nothing;
                }
                let (first, count) = self.block_contents();
                self.cursor = Some(Cursor {
                    offset: first,
                    remaining: count,
                });
                continue;
            };
            if cursor.remaining == 0 {
                self.give_back_block();
                continue;
            }
            return self.take_frame(cursor);
        }
    }

    /// The bytes of a frame `next_frame` returned; empty if `at` is not inside the
    /// block being read (it always is for ranges from `next_frame`).
    pub fn bytes(&self, at: Range<usize>) -> &[u8] {
        let block = self.block_range();
        if self.cursor.is_none()
            || at.start > at.end
            || at.start < block.start
            || at.end > block.end
        {
            return &[];
        }
        // SAFETY: `at` lies inside the current block, which the kernel handed over
        // (status TP_STATUS_USER) and does not write until `give_back_block`, which
        // needs `&mut self`, so not while this borrow of `self` lives.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(at.start), at.len()) }
    }

    /// Byte range of the current block within the ring.
    fn block_range(&self) -> Range<usize> {
        let start = self.block * BLOCK_SIZE;
        start..start + BLOCK_SIZE
    }

    /// The current block's `block_status` word.
    fn block_status(&self) -> &AtomicU32 {
        let offset = self.block_range().start + mem::offset_of!(libc::tpacket_block_desc, hdr);
        // SAFETY: the block descriptor starts each block, inside the mapping; its
        // `hdr.bh1.block_status` (offset 0 of `hdr`) is a 4-aligned u32 (the mapping is
        // page-aligned, blocks are 64 KiB apart). The kernel writes it with barriers,
        // we only touch it atomically; it lives as long as the mapping, i.e. `self`.
        unsafe { AtomicU32::from_ptr(self.map.as_ptr().add(offset).cast::<u32>()) }
    }

    fn block_is_ours(&self) -> bool {
        self.block_status().load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    /// Offset of the first frame and number of frames in the current (our) block.
    fn block_contents(&self) -> (usize, u32) {
        // SAFETY: the descriptor lies at the start of the block, inside the mapping,
        // and the block is ours (status read with Acquire), so the kernel wrote it
        // before and does not write it now. Read unaligned-safe as plain data.
        let descriptor = unsafe {
            ptr::read_unaligned(
                self.map
                    .as_ptr()
                    .add(self.block_range().start)
                    .cast::<libc::tpacket_block_desc>(),
            )
        };
        // SAFETY: TPACKET_V3 blocks always carry the `bh1` member of the union.
        let header = unsafe { descriptor.hdr.bh1 };
        (to_usize(header.offset_to_first_pkt), header.num_pkts)
    }

    /// Reads the frame header at `cursor` and moves the cursor past it.
    fn take_frame(&mut self, cursor: Cursor) -> RingFrame {
        let block = self.block_range();
        let header_end = cursor
            .offset
            .checked_add(ADDRESS_OFFSET + mem::size_of::<libc::sockaddr_ll>());
        if header_end.is_none_or(|end| end > BLOCK_SIZE) {
            // A header outside the block: the rest of this block cannot be trusted.
            self.cursor = Some(Cursor {
                remaining: 0,
                ..cursor
            });
            return RingFrame::Skipped;
        }
        let at = block.start + cursor.offset;
        // SAFETY: `tpacket3_hdr` and the `sockaddr_ll` after it lie inside the block
        // (checked above), which is ours; both are plain data read by value.
        let (header, address) = unsafe {
            let base = self.map.as_ptr().add(at);
            (
                ptr::read_unaligned(base.cast::<libc::tpacket3_hdr>()),
                ptr::read_unaligned(base.add(ADDRESS_OFFSET).cast::<libc::sockaddr_ll>()),
            )
        };
        let next = cursor
            .offset
            .saturating_add(to_usize(header.tp_next_offset));
        self.cursor = Some(Cursor {
            offset: next,
            remaining: cursor.remaining - 1,
        });
        let start = cursor.offset + usize::from(header.tp_mac);
        let end = start.saturating_add(to_usize(header.tp_snaplen));
        if end > BLOCK_SIZE
            || header.tp_snaplen < header.tp_len
            || address.sll_pkttype == libc::PACKET_OUTGOING
        {
            return RingFrame::Skipped;
        }
        RingFrame::Frame(block.start + start..block.start + end)
    }

    /// Hands the current block back to the kernel and moves to the next one.
    fn give_back_block(&mut self) {
        self.block_status()
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.block = (self.block + 1) % BLOCK_COUNT;
        self.cursor = None;
    }

    /// Sleeps in `poll` until the kernel hands over a block (or the socket reports an
    /// error, returned as such). Retries on EINTR.
    pub fn wait(&self, socket: BorrowedFd<'_>) -> io::Result<()> {
        let mut poll = libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            if self.block_is_ours() {
                return Ok(());
            }
            // SAFETY: `poll` is one valid pollfd, alive for the call.
            let rc = unsafe { libc::poll(&mut poll, 1, -1) };
            if rc < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            if poll.revents & libc::POLLNVAL != 0 {
                return Err(io::Error::from_raw_os_error(libc::EBADF));
            }
            if poll.revents & libc::POLLERR != 0 {
                if let Some(error) = pending_error(socket)? {
                    return Err(error);
                }
            }
            if poll.revents & libc::POLLIN == 0 && poll.revents != 0 {
                // Only an error condition without an error code (e.g. POLLHUP): the
                // ring can no longer fill.
                return Err(io::Error::from_raw_os_error(libc::ENETDOWN));
            }
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the range `set_up` mapped; no slice into it outlives
        // `self` (they borrow it).
        unsafe {
            libc::munmap(self.map.as_ptr().cast::<c_void>(), BLOCK_SIZE * BLOCK_COUNT);
        }
    }
}

/// The socket's pending error (`SO_ERROR`, which also clears it), if any.
fn pending_error(socket: BorrowedFd<'_>) -> io::Result<Option<io::Error>> {
    let mut code: c_int = 0;
    let mut len = to_socklen(mem::size_of::<c_int>());
    // SAFETY: `code` is valid for writes of `len` bytes for the whole call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut code as *mut c_int).cast::<c_void>(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((code != 0).then(|| io::Error::from_raw_os_error(code)))
}

fn set_option<T>(socket: BorrowedFd<'_>, name: c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a valid, initialised T of the length passed, alive for the
    // call; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_PACKET,
            name,
            (value as *const T).cast::<c_void>(),
            to_socklen(mem::size_of::<T>()),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Our sizes are small constants; saturate rather than wrap if that ever changes.
fn to_uint(value: usize) -> libc::c_uint {
    libc::c_uint::try_from(value).unwrap_or(libc::c_uint::MAX)
}

fn to_socklen(value: usize) -> libc::socklen_t {
    libc::socklen_t::try_from(value).unwrap_or(libc::socklen_t::MAX)
}

/// Kernel-written u32 offsets/lengths; `usize` is at least 32 bits on Linux.
fn to_usize(value: u32) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// The ring's reading logic on blocks written by the test as the kernel would, in
/// anonymous memory (no root, no socket): frames come out in order with their bytes,
/// finished blocks are given back, and no malformed offset reads outside its block.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const USER: u32 = libc::TP_STATUS_USER;
    const FIRST: usize = 48;

    fn fake_ring() -> Ring {
        // SAFETY: a fresh private anonymous mapping of the ring's size, owned by the
        // returned Ring, whose Drop unmaps exactly this range.
        let map = unsafe {
            libc::mmap(
                ptr::null_mut(),
                BLOCK_SIZE * BLOCK_COUNT,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        Ring {
            map: NonNull::new(map.cast::<u8>()).unwrap(),
            block: 0,
            cursor: None,
        }
    }

    fn write<T>(ring: &Ring, offset: usize, value: T) {
        assert!(offset + mem::size_of::<T>() <= BLOCK_SIZE * BLOCK_COUNT);
        // SAFETY: inside the mapping (checked above); the test is its only user.
        unsafe { ptr::write_unaligned(ring.map.as_ptr().add(offset).cast::<T>(), value) }
    }

    /// One frame as the kernel describes it.
    struct Frame {
        next_offset: u32,
        mac: u16,
        snaplen: u32,
        len: u32,
        pkttype: u8,
    }

    fn frame(next_offset: u32, snaplen: u32) -> Frame {
        Frame {
            next_offset,
            mac: 82,
            snaplen,
            len: snaplen,
            pkttype: libc::PACKET_HOST,
        }
    }

    /// Writes `frames` into `block` (from `first`) and hands the block over.
    fn hand_over(ring: &Ring, block: usize, first: usize, frames: &[Frame]) {
        let base = block * BLOCK_SIZE;
        let mut at = first;
        for (i, f) in frames.iter().enumerate() {
            if at + ADDRESS_OFFSET + mem::size_of::<libc::sockaddr_ll>() <= BLOCK_SIZE {
                // SAFETY: plain data; all-zero is a valid value.
                let mut header: libc::tpacket3_hdr = unsafe { mem::zeroed() };
                header.tp_next_offset = f.next_offset;
                header.tp_mac = f.mac;
                header.tp_snaplen = f.snaplen;
                header.tp_len = f.len;
                header.tp_status = USER;
                write(ring, base + at, header);
                // SAFETY: plain data; all-zero is a valid value.
                let mut address: libc::sockaddr_ll = unsafe { mem::zeroed() };
                address.sll_pkttype = f.pkttype;
                write(ring, base + at + ADDRESS_OFFSET, address);
                let data = at + usize::from(f.mac);
                for j in 0..f.snaplen.min(8) as usize {
                    if data + j < BLOCK_SIZE {
                        write(ring, base + data + j, i as u8);
                    }
                }
            }
            at += f.next_offset as usize;
        }
        let hdr = base + mem::offset_of!(libc::tpacket_block_desc, hdr);
        write(ring, hdr + 4, frames.len() as u32); // num_pkts
        write(ring, hdr + 8, first as u32); // offset_to_first_pkt
        write(ring, hdr, USER); // block_status, last, as the kernel does
    }

    fn status(ring: &Ring, block: usize) -> u32 {
        let hdr = block * BLOCK_SIZE + mem::offset_of!(libc::tpacket_block_desc, hdr);
        // SAFETY: inside the mapping; read as plain data.
        unsafe { ptr::read_unaligned(ring.map.as_ptr().add(hdr).cast::<u32>()) }
    }

    #[test]
    fn nothing_until_a_block_is_handed_over() {
        let mut ring = fake_ring();
        assert_eq!(ring.next_frame(), RingFrame::Nothing);
        assert!(ring.bytes(0..10).is_empty(), "no block is ours");
    }

    #[test]
    fn frames_come_in_order_and_finished_blocks_go_back_to_the_kernel() {
        let mut ring = fake_ring();
        hand_over(&ring, 0, FIRST, &[frame(240, 142), frame(0, 60)]);
        let first = FIRST + 82;
        assert_eq!(ring.next_frame(), RingFrame::Frame(first..first + 142));
        assert_eq!(ring.bytes(first..first + 2), &[0, 0]);
        let second = FIRST + 240 + 82;
        assert_eq!(ring.next_frame(), RingFrame::Frame(second..second + 60));
        assert_eq!(ring.bytes(second..second + 2), &[1, 1]);
        assert_eq!(
            status(&ring, 0),
            USER,
            "still ours while its last frame is lent"
        );
        assert_eq!(ring.next_frame(), RingFrame::Nothing);
        assert_eq!(status(&ring, 0), libc::TP_STATUS_KERNEL);
    }

    #[test]
    fn the_ring_wraps_around_to_its_first_block() {
        let mut ring = fake_ring();
        for block in 0..BLOCK_COUNT {
            hand_over(&ring, block, FIRST, &[frame(0, 60)]);
            let start = block * BLOCK_SIZE + FIRST + 82;
            assert_eq!(ring.next_frame(), RingFrame::Frame(start..start + 60));
        }
        assert_eq!(ring.next_frame(), RingFrame::Nothing);
        hand_over(&ring, 0, FIRST, &[frame(0, 60)]);
        let start = FIRST + 82;
        assert_eq!(ring.next_frame(), RingFrame::Frame(start..start + 60));
    }

    #[test]
    fn outgoing_and_truncated_frames_are_skipped() {
        let mut ring = fake_ring();
        let outgoing = Frame {
            pkttype: libc::PACKET_OUTGOING,
            ..frame(240, 60)
        };
        let truncated = Frame {
            len: 20_000,
            ..frame(240, 100)
        };
        hand_over(&ring, 0, FIRST, &[outgoing, truncated, frame(0, 60)]);
        assert_eq!(ring.next_frame(), RingFrame::Skipped);
        assert_eq!(ring.next_frame(), RingFrame::Skipped);
        let third = FIRST + 480 + 82;
        assert_eq!(ring.next_frame(), RingFrame::Frame(third..third + 60));
    }

    #[test]
    fn offsets_pointing_outside_the_block_are_never_followed() {
        let mut ring = fake_ring();
        // A frame whose data would run past the block's end.
        let too_long = frame(0, BLOCK_SIZE as u32);
        hand_over(&ring, 0, FIRST, &[too_long]);
        assert_eq!(ring.next_frame(), RingFrame::Skipped);
        assert_eq!(ring.next_frame(), RingFrame::Nothing);
        assert_eq!(status(&ring, 0), libc::TP_STATUS_KERNEL);

        // A next-frame offset leading out of the block: the rest is dropped.
        hand_over(
            &ring,
            1,
            FIRST,
            &[frame(u32::MAX, 60), frame(0, 60), frame(0, 60)],
        );
        let start = BLOCK_SIZE + FIRST + 82;
        assert_eq!(ring.next_frame(), RingFrame::Frame(start..start + 60));
        assert_eq!(ring.next_frame(), RingFrame::Skipped);
        assert_eq!(ring.next_frame(), RingFrame::Nothing);
        assert_eq!(status(&ring, 1), libc::TP_STATUS_KERNEL);

        // A first frame past the block's end.
        hand_over(&ring, 2, BLOCK_SIZE - 8, &[frame(0, 60)]);
        assert_eq!(ring.next_frame(), RingFrame::Skipped);
        assert_eq!(ring.next_frame(), RingFrame::Nothing);

        // Ranges outside the current block give no bytes.
        hand_over(&ring, 3, FIRST, &[frame(0, 60)]);
        assert!(matches!(ring.next_frame(), RingFrame::Frame(_)));
        assert!(ring.bytes(0..10).is_empty());
        assert!(ring
            .bytes(4 * BLOCK_SIZE - 4..4 * BLOCK_SIZE + 4)
            .is_empty());
    }
}
