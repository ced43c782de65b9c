//! The in-process nftables engine: loads the system's `libnftables.so.1`
//! (the library `nft` itself is built on) at run time and runs nft scripts
//! through one long-lived `struct nft_ctx`, with the error output captured.
//! No process is spawned. This file is the only place in spad's firewall
//! that uses `unsafe`: the FFI calls below.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr::NonNull;
use std::sync::Mutex;

use libloading::{Library, Symbol};

/// The shared object spad loads; the dynamic loader searches its usual
/// paths (on Debian, `/usr/lib/<triplet>/libnftables.so.1`).
pub(crate) const LIBRARY_NAME: &str = "libnftables.so.1";

/// libnftables keeps a little process-wide state (a one-time init in
/// `nft_ctx_new`, libxtables globals): every call into it holds this lock,
/// so several contexts in one process (tests) never run it concurrently.
static LIBRARY_LOCK: Mutex<()> = Mutex::new(());

type CtxNew = unsafe extern "C" fn(u32) -> *mut c_void;
type CtxFree = unsafe extern "C" fn(*mut c_void);
type CtxBuffer = unsafe extern "C" fn(*mut c_void) -> c_int;
type CtxGetBuffer = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type RunCmd = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

/// The C functions spad calls, resolved once from the loaded library.
#[derive(Clone, Copy)]
struct Functions {
    ctx_free: CtxFree,
    run_cmd_from_buffer: RunCmd,
    get_output_buffer: CtxGetBuffer,
    get_error_buffer: CtxGetBuffer,
}

/// One libnftables context: parses and commits nft scripts in-process.
/// Not thread-safe (libnftables contexts are not): use it from one thread
/// at a time, which `&mut self` on [`LibNft::run`] enforces.
pub(crate) struct LibNft {
    ctx: NonNull<c_void>,
    functions: Functions,
    /// Kept last so the library stays mapped while `ctx` is freed in `drop`.
    _library: Library,
}

// SAFETY: a libnftables context has no thread affinity (no thread-local
// state; its netlink socket is an ordinary fd). `LibNft` owns its context
// exclusively and every use goes through `&mut self` (it is not `Sync`),
// and all calls into the library are serialised by `LIBRARY_LOCK`, so
// moving it to another thread cannot cause concurrent use.
unsafe impl Send for LibNft {}

impl std::fmt::Debug for LibNft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibNft")
            .field("library", &LIBRARY_NAME)
            .finish_non_exhaustive()
    }
}

impl LibNft {
    /// Loads libnftables and creates a context with its standard output
    /// and error output buffered (nothing reaches spad's stdout/stderr).
    /// The error says why the library cannot be used.
    pub fn load() -> Result<LibNft, String> {
        // SAFETY: loading runs the library's initialisers; libnftables is
        // the distribution's nftables library (the one `nft` links), whose
        // initialisers only set up its own state.
        let library = unsafe { Library::new(LIBRARY_NAME) }
            .map_err(|err| format!("cannot load {LIBRARY_NAME}: {err}"))?;

        // SAFETY: the types match the prototypes in <nftables/libnftables.h>
        // (libnftables(3)): `struct nft_ctx *` is an opaque pointer,
        // `uint32_t` is u32, `const char *` a NUL-terminated C string, `int`
        // c_int; the pointers are only called while `library` is loaded
        // (it moves into the `LibNft` that holds them).
        let (ctx_new, buffer_output, buffer_error, functions) = unsafe {
            let ctx_new: CtxNew = symbol(&library, b"nft_ctx_new\0")?;
            let buffer_output: CtxBuffer = symbol(&library, b"nft_ctx_buffer_output\0")?;
            let buffer_error: CtxBuffer = symbol(&library, b"nft_ctx_buffer_error\0")?;
            let functions = Functions {
                ctx_free: symbol(&library, b"nft_ctx_free\0")?,
                run_cmd_from_buffer: symbol(&library, b"nft_run_cmd_from_buffer\0")?,
                get_output_buffer: symbol(&library, b"nft_ctx_get_output_buffer\0")?,
                get_error_buffer: symbol(&library, b"nft_ctx_get_error_buffer\0")?,
            };
            (ctx_new, buffer_output, buffer_error, functions)
        };

        let guard = lock();
        // SAFETY: NFT_CTX_DEFAULT (0) is the only documented flag value;
        // the call returns a new context or NULL.
        let raw = unsafe { ctx_new(0) };
        let ctx = NonNull::new(raw).ok_or_else(|| "nft_ctx_new failed".to_owned())?;
        // From here on `ctx` is owned: wrap it so it is freed on any error.
        let engine = LibNft {
            ctx,
            functions,
            _library: library,
        };
        // SAFETY: `ctx` is a live context from nft_ctx_new, used by this
        // thread only (we hold the lock).
        let buffered = unsafe {
            buffer_output(engine.ctx.as_ptr()) == 0 && buffer_error(engine.ctx.as_ptr()) == 0
        };
        drop(guard);
        if !buffered {
            return Err("libnftables could not buffer its output".to_owned());
        }
        Ok(engine)
    }

    /// Runs `script` (nft syntax, several lines: one transaction, as with
    /// `nft -f`). On failure, the error is what libnftables reported (the
    /// same text `nft` prints on stderr).
    pub fn run(&mut self, script: &str) -> Result<(), String> {
        let script = CString::new(script)
            .map_err(|_| "an nft script must not contain a NUL byte".to_owned())?;
        let ctx = self.ctx.as_ptr();
        let guard = lock();
        // SAFETY: `ctx` is live and used by this thread only (`&mut self`,
        // and the lock); `script` is NUL-terminated and outlives the call.
        let status = unsafe { (self.functions.run_cmd_from_buffer)(ctx, script.as_ptr()) };
        // Both buffers are read after every run: reading rewinds them, so
        // the next run starts with empty buffers.
        // SAFETY: as above; the returned pointer is NUL-terminated, owned by
        // the context and valid until the next call into it, so it is
        // copied before the lock is released.
        let errors = unsafe { copy_c_string((self.functions.get_error_buffer)(ctx)) };
        // SAFETY: as for the error buffer.
        let _output = unsafe { copy_c_string((self.functions.get_output_buffer)(ctx)) };
        drop(guard);
        if status == 0 {
            if !errors.trim().is_empty() {
                tracing::debug!(warnings = %errors.trim(), "libnftables warned");
            }
            Ok(())
        } else if errors.trim().is_empty() {
            Err(format!(
                "libnftables failed (status {status}) without a message"
            ))
        } else {
            Err(errors.trim().to_owned())
        }
    }
}

impl Drop for LibNft {
    fn drop(&mut self) {
        let _guard = lock();
        // SAFETY: `ctx` came from nft_ctx_new, is freed exactly once here,
        // and the library (`_library`) is still loaded: fields drop after
        // this function returns.
        unsafe { (self.functions.ctx_free)(self.ctx.as_ptr()) };
    }
}

/// Takes the library lock; a panic while holding it does not poison the
/// library itself, so a poisoned lock is simply taken over.
fn lock() -> std::sync::MutexGuard<'static, ()> {
    LIBRARY_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Looks up `name` (NUL-terminated) and copies out the function pointer.
///
/// # Safety
/// `T` must be the exact function-pointer type of the C symbol, and the
/// pointer must not be called after `library` is unloaded.
unsafe fn symbol<T: Copy>(library: &Library, name: &[u8]) -> Result<T, String> {
    // SAFETY: the caller guarantees `T` matches the symbol's type.
    let found: Symbol<'_, T> = unsafe { library.get(name) }.map_err(|err| {
        let shown = String::from_utf8_lossy(name.strip_suffix(b"\0").unwrap_or(name)).into_owned();
        format!("{LIBRARY_NAME} has no {shown}: {err}")
    })?;
    Ok(*found)
}

/// Copies a C string owned by libnftables; NULL gives "".
///
/// # Safety
/// `ptr` must be NULL or point to a NUL-terminated string that stays valid
/// for the duration of this call.
unsafe fn copy_c_string(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: non-NULL and NUL-terminated, per the caller.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs the library installed (Debian: libnftables1, a dependency of
    /// nftables) but not root: a parse error is reported before any
    /// netlink request is made.
    #[test]
    fn a_syntax_error_comes_back_as_nft_prints_it() {
        let mut nft = match LibNft::load() {
            Ok(nft) => nft,
            Err(why) => panic!("libnftables must be installed for this test: {why}"),
        };
        let err = nft
            .run("add rubbish inet spad\n")
            .expect_err("nft must refuse a bad script");
        assert!(err.contains("Error: syntax error"), "{err}");
        assert!(
            err.contains("rubbish"),
            "the message quotes the line: {err}"
        );
        // The context stays usable and starts the next run with an empty
        // error buffer.
        let again = nft.run("add rubbish2 inet spad\n").expect_err("bad again");
        assert!(!again.contains("rubbish inet"), "{again}");
        assert!(nft.run("a\0b").is_err());
    }
}
