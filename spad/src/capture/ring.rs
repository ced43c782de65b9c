//! The capture socket's receive ring: a TPACKET_V2 `PACKET_RX_RING` mapped into spad,
//! into which the kernel writes every frame the BPF filter accepts, one fixed-size
//! slot per frame, handing each over on its own (the slot's status word flips to
//! `TP_STATUS_USER`, and the socket turns readable at once: no timer). spad reads the
//! slots in order without a system call, gives each back (status `TP_STATUS_KERNEL`)
//! when it asks for the next, and sleeps in `poll` only when the next slot is still
//! the kernel's.
//!
//! **Adaptive batching.** A lone knock is read the moment `poll` returns. Under a
//! flood, waking up for every frame would cost a context switch each (what makes
//! `recvfrom` expensive); so when the frames read since the last wake-up reach
//! [`BATCH_THRESHOLD`] (a flood: frames arrived faster than spad read them) and the
//! ring then runs empty, spad naps [`NAP`] before it looks again, and reads what
//! gathered meanwhile in one go. Only a wake-up that already brought that many frames
//! leads to a nap, so a knock that arrives when nothing else does is never delayed; a
//! knock inside a flood waits at most one nap. A nap that finds fewer frames goes back
//! to `poll`, so an idle spad is never woken (0 wake-ups per second).
//!
//! Sizes, and why (measured on this project's 2-core test machine, see
//! docs/performance.md):
//! - [`FRAME_SIZE`] 256 bytes: the kernel puts the frame at offset 66 of its slot
//!   (32-byte `tpacket2_hdr`, 20-byte `sockaddr_ll`, aligned so the IP header is at
//!   80), so 190 bytes of frame fit: every spa/1 datagram (100 bytes of payload: 142
//!   bytes over IPv4, 162 over IPv6, +4 with a VLAN tag still in the frame, +40 of
//!   IPv4 options) and every knock. A longer frame (e.g. a fwknop packet) is not
//!   lost: with `PACKET_COPY_THRESH` on, the kernel queues the whole frame on the
//!   socket as well and marks its slot `TP_STATUS_COPY`; spad then reads it with one
//!   `recvfrom`, in order (the kernel fills the slot and queues the copy under one
//!   lock). Only if that queue is full too (the socket's receive buffer, 8 MiB at
//!   most) is the frame cut short and skipped (counted).
//! - [`FRAME_COUNT`] 2048 (512 KiB in [`BLOCK_SIZE`] = one-page blocks: single-page
//!   kernel allocations, which never fail for fragmentation): ~20 ms of a 100k pkt/s
//!   flood during which spad may be descheduled without a drop (twenty naps). With
//!   1024 slots spa-bench saw drops in two of four floods of ~55-100k pkt/s on the
//!   busy test machine (155 and 1470 frames); with 2048, in one of twelve (2565
//!   frames, with the machine at a load average of ~10 from other builds), none
//!   when it was less busy. (`recvfrom`'s 8 MiB queue holds ~70 ms of such a flood.)
//!   The kernel maps every page of the ring into spad when it is set up, so the
//!   whole ring counts in spad's RSS from the start (file-backed `RssFile`; measured
//!   +0.5 MB idle), which is why it is not larger (the idle goal is 4 MB). The V3
//!   ring this replaces also used 512 KiB, for ~2200 frames.
//! - [`NAP`] 1 ms and [`BATCH_THRESHOLD`] 8: the prototype's values, kept because
//!   they met both targets (flood CPU 4-7 % of a core, knock -> rule p50 < 1 ms);
//!   not re-tuned. A longer nap would cut CPU further but delay a knock inside a
//!   flood by as much; a lower threshold would batch moderate traffic sooner at the
//!   same price.
//!
//! Why not TPACKET_V3 (which packs frames into blocks): it hands a block that is not
//! full over only when the kernel's block-retire timer fires, 1 ms at the least, so a
//! lone knock waited ~1 ms in the ring (knock → rule p50 1.8–2.0 ms against 0.95 ms
//! with `recvfrom`). V2 hands over each frame at once, and the nap gives the batching
//! back under a flood only.
//!
//! Every slot's header is checked against the slot's bounds before a byte of the
//! frame is read, so a malformed header can never make spad read outside its slot.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::ops::Range;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use libc::{c_int, c_void};

/// Bytes per slot: header, address and the frame (see the module doc).
pub const FRAME_SIZE: usize = 256;
/// Slots in the ring (see the module doc).
pub const FRAME_COUNT: usize = 2048;
/// Bytes per kernel block of slots: one page.
pub const BLOCK_SIZE: usize = 4096;
/// Frames read since the last wake-up that mark a flood (then the next empty ring
/// means a nap, not `poll`).
pub const BATCH_THRESHOLD: u32 = 8;
/// How long spad naps under a flood before it reads the ring again.
pub const NAP: Duration = Duration::from_millis(1);

/// The ring's size in bytes.
const RING_BYTES: usize = FRAME_SIZE * FRAME_COUNT;

/// Offset of the `sockaddr_ll` after each slot's `tpacket2_hdr`.
const ADDRESS_OFFSET: usize = align(mem::size_of::<libc::tpacket2_hdr>());

/// Where the frame may start at the earliest: after the header and the address.
const FRAME_MIN_OFFSET: usize = ADDRESS_OFFSET + mem::size_of::<libc::sockaddr_ll>();

// The slots tile the blocks exactly, so slot `i` is at `i * FRAME_SIZE`.
const _: () = assert!(BLOCK_SIZE.is_multiple_of(FRAME_SIZE));
const _: () = assert!(RING_BYTES.is_multiple_of(BLOCK_SIZE));
const _: () = assert!(FRAME_SIZE.is_multiple_of(libc::TPACKET_ALIGNMENT));

/// `TPACKET_ALIGN` as a `const fn`.
const fn align(len: usize) -> usize {
    (len + libc::TPACKET_ALIGNMENT - 1) & !(libc::TPACKET_ALIGNMENT - 1)
}

/// What the next look into the ring found.
#[derive(Debug, PartialEq, Eq)]
pub enum RingFrame {
    /// A frame at this range of the ring, valid until the next call to `next_frame`.
    Frame(Range<usize>),
    /// A frame longer than a slot: the kernel queued it whole on the socket; read it
    /// with one `recvfrom` now (it is the next one queued there). `outgoing`: the
    /// slot says it is an outgoing copy, to be read and thrown away.
    Queued { outgoing: bool },
    /// A frame we never deliver: an outgoing copy, or cut short with no copy queued.
    Skipped,
    /// The next slot still belongs to the kernel.
    Nothing,
}

/// How [`Ring::wait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A frame was handed over after a nap (the previous wake-up brought a flood).
    AfterNap,
    /// A frame was handed over while spad slept in `poll` (or already had been).
    AfterPoll,
}

/// The mapped ring. Owned by the [`super::Capture`] that reads it.
#[derive(Debug)]
pub struct Ring {
    map: NonNull<u8>,
    /// Index of the next slot to read (or to wait for).
    next: usize,
    /// The slot whose frame was lent out last; still ours until the next call.
    lent: Option<usize>,
    /// Frames read since the last wake-up (`poll` returned or a nap ended).
    batch: u32,
}

// SAFETY: the mapping is owned by this value alone (no copies of the pointer escape;
// frames are lent out as slices borrowing `&self`), so moving it to another thread is
// as sound as moving a `Vec<u8>`.
unsafe impl Send for Ring {}

impl Ring {
    /// Switches `socket` to TPACKET_V2, asks for whole copies of frames longer than a
    /// slot, then for the ring, and maps it. On an error the socket may be left with a
    /// ring it cannot use: close it.
    pub fn set_up(socket: BorrowedFd<'_>) -> io::Result<Ring> {
        let version = libc::tpacket_versions::TPACKET_V2 as c_int;
        set_option(socket, libc::PACKET_VERSION, &version)?;
        // Any non-zero value turns the copies on (the kernel only tests it for 0).
        let copy_long_frames: c_int = 1;
        set_option(socket, libc::PACKET_COPY_THRESH, &copy_long_frames)?;
        let request = libc::tpacket_req {
            tp_block_size: to_uint(BLOCK_SIZE),
            tp_block_nr: to_uint(RING_BYTES / BLOCK_SIZE),
            tp_frame_size: to_uint(FRAME_SIZE),
            tp_frame_nr: to_uint(FRAME_COUNT),
        };
        set_option(socket, libc::PACKET_RX_RING, &request)?;
        // SAFETY: a fresh shared mapping of the socket's ring at an address the kernel
        // chooses; nothing else in the process uses that range. The result is checked.
        let map = unsafe {
            libc::mmap(
                ptr::null_mut(),
                RING_BYTES,
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
        Ok(Ring::over(map))
    }

    fn over(map: NonNull<u8>) -> Ring {
        Ring {
            map,
            next: 0,
            lent: None,
            batch: 0,
        }
    }

    /// The next frame, giving the previous slot back to the kernel. Never blocks.
    pub fn next_frame(&mut self) -> RingFrame {
        if let Some(slot) = self.lent.take() {
            self.status(slot)
                .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        }
        let slot = self.next;
        let status = self.status(slot).load(Ordering::Acquire);
        if status & libc::TP_STATUS_USER == 0 {
            return RingFrame::Nothing;
        }
        self.lent = Some(slot);
        self.next = (slot + 1) % FRAME_COUNT;
        self.batch = self.batch.saturating_add(1);
        self.take_frame(slot, status)
    }

    /// The bytes of a frame `next_frame` returned; empty if `at` is not inside the
    /// slot lent out (it always is for ranges from `next_frame`).
    pub fn bytes(&self, at: Range<usize>) -> &[u8] {
        let Some(slot) = self.lent else {
            return &[];
        };
        let slot = slot_range(slot);
        if at.start > at.end || at.start < slot.start || at.end > slot.end {
            return &[];
        }
        // SAFETY: `at` lies inside the slot lent out, which the kernel handed over
        // (status TP_STATUS_USER, read with Acquire) and does not write until the
        // slot is given back in `next_frame`, which needs `&mut self`, so not while
        // this borrow of `self` lives.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(at.start), at.len()) }
    }

    /// A slot's `tp_status` word.
    fn status(&self, slot: usize) -> &AtomicU32 {
        let offset = slot_range(slot).start + mem::offset_of!(libc::tpacket2_hdr, tp_status);
        // SAFETY: the header starts each slot, inside the mapping (`slot` is always
        // below FRAME_COUNT); `tp_status` is a 4-aligned u32 (the mapping is
        // page-aligned, slots are 256 bytes apart, the field is at offset 0). The
        // kernel writes it with barriers, we only touch it atomically; it lives as
        // long as the mapping, i.e. `self`.
        unsafe { AtomicU32::from_ptr(self.map.as_ptr().add(offset).cast::<u32>()) }
    }

    /// Reads the header of `slot` (ours, with this `status`) and says what it holds.
    fn take_frame(&self, slot: usize, status: u32) -> RingFrame {
        let base = slot_range(slot).start;
        // SAFETY: `tpacket2_hdr` and the `sockaddr_ll` after it lie inside the slot
        // (FRAME_MIN_OFFSET <= FRAME_SIZE), which is ours; both are plain data read
        // by value.
        let (header, address) = unsafe {
            let at = self.map.as_ptr().add(base);
            (
                ptr::read_unaligned(at.cast::<libc::tpacket2_hdr>()),
                ptr::read_unaligned(at.add(ADDRESS_OFFSET).cast::<libc::sockaddr_ll>()),
            )
        };
        let outgoing = address.sll_pkttype == libc::PACKET_OUTGOING;
        if status & libc::TP_STATUS_COPY != 0 {
            return RingFrame::Queued { outgoing };
        }
        let start = usize::from(header.tp_mac);
        let end = start.saturating_add(to_usize(header.tp_snaplen));
        if start < FRAME_MIN_OFFSET
            || end > FRAME_SIZE
            || header.tp_snaplen < header.tp_len
            || outgoing
        {
            return RingFrame::Skipped;
        }
        RingFrame::Frame(base + start..base + end)
    }

    /// Sleeps until the kernel hands over the next slot: first a [`NAP`] if the frames
    /// read since the last wake-up reached [`BATCH_THRESHOLD`], then, if still
    /// nothing, in `poll` (or returns a socket error as such). Retries on EINTR.
    pub fn wait(&mut self, socket: BorrowedFd<'_>) -> io::Result<Wake> {
        let flooded = self.batch >= BATCH_THRESHOLD;
        self.batch = 0;
        if flooded {
            std::thread::sleep(NAP);
            if self.next_is_ours() {
                return Ok(Wake::AfterNap);
            }
        }
        let mut poll = libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            if self.next_is_ours() {
                return Ok(Wake::AfterPoll);
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

    fn next_is_ours(&self) -> bool {
        self.status(self.next).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the range `set_up` mapped; no slice into it outlives
        // `self` (they borrow it).
        unsafe {
            libc::munmap(self.map.as_ptr().cast::<c_void>(), RING_BYTES);
        }
    }
}

/// Byte range of `slot` within the ring.
fn slot_range(slot: usize) -> Range<usize> {
    let start = slot * FRAME_SIZE;
    start..start + FRAME_SIZE
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

/// Kernel-written u32 lengths; `usize` is at least 32 bits on Linux.
fn to_usize(value: u32) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// The ring's reading logic on slots written by the test as the kernel would, in
/// anonymous memory (no root, no capture socket): frames come out in order with their
/// bytes, each slot is given back when the next is asked for, no malformed header
/// reads outside its slot, and `wait` naps only after a flood.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixDatagram;

    const USER: u32 = libc::TP_STATUS_USER;
    /// Where the kernel puts an Ethernet frame in a slot (see the module doc).
    const MAC: u16 = 66;

    fn fake_ring() -> Ring {
        // SAFETY: a fresh private anonymous mapping of the ring's size, owned by the
        // returned Ring, whose Drop unmaps exactly this range.
        let map = unsafe {
            libc::mmap(
                ptr::null_mut(),
                RING_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        Ring::over(NonNull::new(map.cast::<u8>()).unwrap())
    }

    fn write<T>(ring: &Ring, offset: usize, value: T) {
        assert!(offset + mem::size_of::<T>() <= RING_BYTES);
        // SAFETY: inside the mapping (checked above); the test is its only user.
        unsafe { ptr::write_unaligned(ring.map.as_ptr().add(offset).cast::<T>(), value) }
    }

    /// One slot as the kernel fills it.
    struct Slot {
        status: u32,
        mac: u16,
        snaplen: u32,
        len: u32,
        pkttype: u8,
        /// First byte of the frame (the rest of it is zero).
        mark: u8,
    }

    fn slot(snaplen: u32, mark: u8) -> Slot {
        Slot {
            status: USER,
            mac: MAC,
            snaplen,
            len: snaplen,
            pkttype: libc::PACKET_HOST,
            mark,
        }
    }

    /// Fills slot `index` and hands it over (status last, as the kernel does).
    fn hand_over(ring: &Ring, index: usize, s: Slot) {
        let base = index * FRAME_SIZE;
        // SAFETY: plain data; all-zero is a valid value.
        let mut header: libc::tpacket2_hdr = unsafe { mem::zeroed() };
        header.tp_mac = s.mac;
        header.tp_snaplen = s.snaplen;
        header.tp_len = s.len;
        write(ring, base, header);
        // SAFETY: plain data; all-zero is a valid value.
        let mut address: libc::sockaddr_ll = unsafe { mem::zeroed() };
        address.sll_pkttype = s.pkttype;
        write(ring, base + ADDRESS_OFFSET, address);
        if usize::from(s.mac) < FRAME_SIZE {
            write(ring, base + usize::from(s.mac), s.mark);
        }
        write(ring, base, s.status);
    }

    fn status(ring: &Ring, index: usize) -> u32 {
        // SAFETY: inside the mapping; read as plain data.
        unsafe { ptr::read_unaligned(ring.map.as_ptr().add(index * FRAME_SIZE).cast::<u32>()) }
    }

    fn frame_at(index: usize, len: usize) -> Range<usize> {
        let start = index * FRAME_SIZE + usize::from(MAC);
        start..start + len
    }

    #[test]
    fn nothing_until_a_slot_is_handed_over() {
        let mut ring = fake_ring();
        assert_eq!(ring.next_frame(), RingFrame::Nothing);
        assert!(ring.bytes(0..10).is_empty(), "no slot is ours");
    }

    #[test]
    fn frames_come_in_order_and_each_slot_goes_back_when_the_next_is_asked_for() {
        let mut ring = fake_ring();
        hand_over(&ring, 0, slot(142, 7));
        hand_over(&ring, 1, slot(60, 8));
        assert_eq!(ring.next_frame(), RingFrame::Frame(frame_at(0, 142)));
        assert_eq!(ring.bytes(frame_at(0, 2)), &[7, 0]);
        assert_eq!(status(&ring, 0), USER, "still ours while its frame is lent");
        assert_eq!(ring.next_frame(), RingFrame::Frame(frame_at(1, 60)));
        assert_eq!(status(&ring, 0), libc::TP_STATUS_KERNEL);
        assert_eq!(ring.bytes(frame_at(1, 1)), &[8]);
        assert!(ring.bytes(frame_at(0, 1)).is_empty(), "given back");
        assert_eq!(ring.next_frame(), RingFrame::Nothing);
        assert_eq!(status(&ring, 1), libc::TP_STATUS_KERNEL);
        assert!(ring.bytes(frame_at(1, 1)).is_empty());
    }

    #[test]
    fn the_ring_wraps_around_to_its_first_slot() {
        let mut ring = fake_ring();
        for index in 0..FRAME_COUNT {
            hand_over(&ring, index, slot(60, 1));
            assert_eq!(ring.next_frame(), RingFrame::Frame(frame_at(index, 60)));
        }
        assert_eq!(ring.next_frame(), RingFrame::Nothing);
        hand_over(&ring, 0, slot(60, 1));
        assert_eq!(ring.next_frame(), RingFrame::Frame(frame_at(0, 60)));
    }

    #[test]
    fn a_slot_handed_over_out_of_turn_waits_for_its_turn() {
        let mut ring = fake_ring();
        hand_over(&ring, 1, slot(60, 1));
        assert_eq!(ring.next_frame(), RingFrame::Nothing);
        hand_over(&ring, 0, slot(60, 0));
        assert_eq!(ring.next_frame(), RingFrame::Frame(frame_at(0, 60)));
        assert_eq!(ring.next_frame(), RingFrame::Frame(frame_at(1, 60)));
    }

    #[test]
    fn outgoing_and_truncated_frames_are_skipped_and_long_ones_read_from_the_queue() {
        let mut ring = fake_ring();
        let outgoing = Slot {
            pkttype: libc::PACKET_OUTGOING,
            ..slot(60, 0)
        };
        let truncated = Slot {
            len: 1500,
            ..slot(190, 0)
        };
        let copied = Slot {
            status: USER | libc::TP_STATUS_COPY,
            len: 1500,
            ..slot(190, 0)
        };
        let copied_outgoing = Slot {
            pkttype: libc::PACKET_OUTGOING,
            ..copied
        };
        hand_over(&ring, 0, outgoing);
        hand_over(&ring, 1, truncated);
        hand_over(&ring, 2, copied);
        hand_over(&ring, 3, copied_outgoing);
        hand_over(&ring, 4, slot(60, 0));
        assert_eq!(ring.next_frame(), RingFrame::Skipped);
        assert_eq!(ring.next_frame(), RingFrame::Skipped);
        assert_eq!(ring.next_frame(), RingFrame::Queued { outgoing: false });
        assert_eq!(ring.next_frame(), RingFrame::Queued { outgoing: true });
        assert_eq!(ring.next_frame(), RingFrame::Frame(frame_at(4, 60)));
    }

    #[test]
    fn headers_pointing_outside_the_slot_are_never_followed() {
        let mut ring = fake_ring();
        // Data running past the slot's end.
        hand_over(&ring, 0, slot(191, 0));
        // Data starting past the slot's end.
        let far = Slot {
            mac: u16::MAX,
            ..slot(1, 0)
        };
        hand_over(&ring, 1, far);
        // Data overlapping the header.
        let early = Slot {
            mac: 8,
            ..slot(60, 0)
        };
        hand_over(&ring, 2, early);
        // A length that overflows.
        hand_over(&ring, 3, slot(u32::MAX, 0));
        for index in 0..4 {
            assert_eq!(ring.next_frame(), RingFrame::Skipped, "slot {index}");
        }
        assert_eq!(ring.next_frame(), RingFrame::Nothing);
        for index in 0..4 {
            assert_eq!(status(&ring, index), libc::TP_STATUS_KERNEL, "slot {index}");
        }
        // Ranges outside the slot lent out give no bytes.
        hand_over(&ring, 4, slot(60, 0));
        assert!(matches!(ring.next_frame(), RingFrame::Frame(_)));
        assert!(ring.bytes(0..10).is_empty());
        assert!(ring
            .bytes(5 * FRAME_SIZE - 4..5 * FRAME_SIZE + 4)
            .is_empty());
    }

    /// A socket that never turns readable, for `wait` to poll if it gets that far.
    fn quiet_socket() -> (UnixDatagram, UnixDatagram) {
        UnixDatagram::pair().unwrap()
    }

    #[test]
    fn a_lone_frame_is_waited_for_in_poll_never_with_a_nap() {
        let mut ring = fake_ring();
        let (socket, _peer) = quiet_socket();
        hand_over(&ring, 0, slot(60, 0));
        assert!(matches!(ring.next_frame(), RingFrame::Frame(_)));
        assert_eq!(ring.next_frame(), RingFrame::Nothing);
        // The next frame is already there when spad would sleep: no nap before it.
        hand_over(&ring, 1, slot(60, 0));
        let started = std::time::Instant::now();
        assert_eq!(ring.wait(socket.as_fd()).unwrap(), Wake::AfterPoll);
        println!("lone frame: wait returned after {:?}", started.elapsed());
        // Seven frames in one wake-up are not a flood either.
        for index in 1..BATCH_THRESHOLD as usize {
            hand_over(&ring, index, slot(60, 0));
        }
        for _ in 1..BATCH_THRESHOLD {
            assert!(matches!(ring.next_frame(), RingFrame::Frame(_)));
        }
        assert_eq!(ring.next_frame(), RingFrame::Nothing);
        hand_over(&ring, BATCH_THRESHOLD as usize, slot(60, 0));
        assert_eq!(ring.wait(socket.as_fd()).unwrap(), Wake::AfterPoll);
    }

    /// The "kernel" hands over a flood (the batching threshold) and the
    /// reader takes it all; returns how many frames that was.
    fn read_a_flood(ring: &mut Ring) -> usize {
        let flood = BATCH_THRESHOLD as usize;
        for index in 0..flood {
            hand_over(ring, index, slot(60, 0));
        }
        for _ in 0..flood {
            assert!(matches!(ring.next_frame(), RingFrame::Frame(_)));
        }
        assert_eq!(ring.next_frame(), RingFrame::Nothing);
        flood
    }

    #[test]
    fn after_a_flood_of_frames_the_ring_is_read_again_after_a_nap() {
        let mut ring = fake_ring();
        let (socket, _peer) = quiet_socket();
        let flood = read_a_flood(&mut ring);
        hand_over(&ring, flood, slot(60, 0));
        let started = std::time::Instant::now();
        assert_eq!(ring.wait(socket.as_fd()).unwrap(), Wake::AfterNap);
        assert!(started.elapsed() >= NAP, "{:?}", started.elapsed());
        // That wake-up brought one frame: the next wait does not nap.
        assert!(matches!(ring.next_frame(), RingFrame::Frame(_)));
        assert_eq!(ring.next_frame(), RingFrame::Nothing);
        hand_over(&ring, flood + 1, slot(60, 0));
        assert_eq!(ring.wait(socket.as_fd()).unwrap(), Wake::AfterPoll);
    }

    #[test]
    fn a_nap_that_finds_nothing_goes_on_to_poll() {
        let mut ring = fake_ring();
        let (socket, peer) = quiet_socket();
        let flood = read_a_flood(&mut ring);
        // The "kernel" hands the next frame over 50 ms later and wakes the poller.
        let map = ring.map.as_ptr() as usize;
        let kernel = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let at = (map + flood * FRAME_SIZE) as *mut u8;
            // SAFETY: slot `flood` of the ring's mapping, alive until the test joins
            // this thread; the reader only loads the status atomically.
            unsafe {
                let mut header: libc::tpacket2_hdr = mem::zeroed();
                header.tp_mac = MAC;
                header.tp_snaplen = 60;
                header.tp_len = 60;
                ptr::write_unaligned(at.cast::<libc::tpacket2_hdr>(), header);
                AtomicU32::from_ptr(at.cast::<u32>()).store(USER, Ordering::Release);
            }
            peer.send(b"readable").unwrap();
        });
        assert_eq!(ring.wait(socket.as_fd()).unwrap(), Wake::AfterPoll);
        kernel.join().unwrap();
        assert_eq!(ring.next_frame(), RingFrame::Frame(frame_at(flood, 60)));
    }
}
