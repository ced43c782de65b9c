//! Who runs spad's nft scripts: libnftables in-process (one context for the
//! firewall's lifetime, no process spawned) or an `nft -f -` process per
//! script (when the library cannot be loaded, or the firewall works in
//! another network namespace through `ip netns exec`). Both run the very
//! same script text.

use std::fmt;
use std::time::Duration;

use super::error::FirewallError;
use super::libnft::{LibNft, LIBRARY_NAME};
use super::runner::Runner;

/// Time limit for one `nft` process.
const NFT_TIMEOUT: Duration = Duration::from_secs(20);

/// How spad talks to nftables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NftEngine {
    /// libnftables loaded into spad: one long-lived context.
    Library,
    /// One `nft -f -` process per script (through `ip netns exec` when the
    /// firewall works in another namespace).
    Process,
}

impl fmt::Display for NftEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NftEngine::Library => "in-process libnftables",
            NftEngine::Process => "`nft -f -` processes",
        })
    }
}

/// The engine in use, ready to run scripts.
#[derive(Debug)]
pub(crate) enum NftScripts {
    Library(LibNft),
    Process,
}

impl NftScripts {
    /// The engine `wanted`, or the best available one when `None`: the
    /// library unless `netns` is set or it cannot be loaded. Asking for
    /// [`NftEngine::Library`] explicitly fails when it cannot be used.
    pub fn choose(
        wanted: Option<NftEngine>,
        netns: Option<&str>,
    ) -> Result<NftScripts, FirewallError> {
        let library_refused = |why: String| FirewallError::NftLibraryUnavailable(why);
        match (wanted, netns) {
            (Some(NftEngine::Process), _) => {
                tracing::info!("nftables: running `nft -f -` processes (as configured)");
                Ok(NftScripts::Process)
            }
            (Some(NftEngine::Library), Some(ns)) => Err(library_refused(format!(
                "the firewall works in network namespace {ns:?}, which only \
                 `ip netns exec nft` can reach"
            ))),
            (Some(NftEngine::Library), None) => {
                let library = LibNft::load().map_err(library_refused)?;
                tracing::info!("nftables: using in-process {LIBRARY_NAME}");
                Ok(NftScripts::Library(library))
            }
            (None, Some(ns)) => {
                tracing::info!(
                    netns = ns,
                    "nftables: running `ip netns exec {ns} nft -f -` processes"
                );
                Ok(NftScripts::Process)
            }
            (None, None) => match LibNft::load() {
                Ok(library) => {
                    tracing::info!("nftables: using in-process {LIBRARY_NAME}");
                    Ok(NftScripts::Library(library))
                }
                Err(why) => {
                    tracing::info!(
                        reason = %why,
                        "nftables: libnftables unavailable, running `nft -f -` processes"
                    );
                    Ok(NftScripts::Process)
                }
            },
        }
    }

    /// Which engine this is.
    pub fn engine(&self) -> NftEngine {
        match self {
            NftScripts::Library(_) => NftEngine::Library,
            NftScripts::Process => NftEngine::Process,
        }
    }

    /// Runs one script as one transaction: all of it or nothing.
    pub fn run(&mut self, runner: &Runner, script: &str) -> Result<(), FirewallError> {
        match self {
            NftScripts::Library(library) => {
                library
                    .run(script)
                    .map_err(|message| FirewallError::NftLibrary {
                        first_line: script.lines().next().unwrap_or_default().to_owned(),
                        message,
                    })
            }
            NftScripts::Process => {
                let argv = ["nft", "-f", "-"].map(str::to_owned);
                runner.run_ok(&argv, Some(script), NFT_TIMEOUT)?;
                Ok(())
            }
        }
    }
}
