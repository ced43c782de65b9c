//! spad's firewall: opens and closes doors for an address through one of
//! three backends — nftables sets with kernel timeouts (default), an
//! iptables chain, or the operator's own commands — and owns everything it
//! creates in the ruleset (and nothing else). It never reads the clock:
//! doors whose backend does not close by itself ([`Firewall::kernel_closes`]
//! is false) are closed when spad's timers call [`Firewall::close`].
//!
//! nftables transactions go to the kernel as nf_tables netlink batches
//! from spad itself (also when the firewall works in another network
//! namespace: the socket is opened there), or through `nft -f -` processes
//! when asked ([`NftEngine`]). Many opens or closes at once
//! ([`Firewall::open_many`], [`Firewall::close_many`]) go to nftables as one
//! transaction.
//!
//! Reconciliation: [`Firewall::watch`] gives a [`FirewallWatch`] that wakes
//! when someone else changes nf_tables (spad's table, or the iptables-nft
//! `filter` tables); [`Firewall::check_intact`] then says whether spad's
//! setup is still all there and [`Firewall::repair`] puts it back with the
//! open doors' remaining time (drop rules first, then the doors).
//!
//! The SPA-port stealth rule goes to nftables unless no door uses nftables
//! and some door uses iptables. Dropping a `Firewall` changes nothing in the
//! kernel: call [`Firewall::teardown`] on a clean exit.

mod command;
mod error;
mod iptables;
mod netlink;
mod nft_engine;
mod nft_wire;
mod nftables;
mod runner;
mod spec;
mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use spa_proto::names::DoorName;
use spa_proto::packet::canonical_ip;

pub use command::{CommandTemplates, TemplateError};
pub use error::FirewallError;
pub use nft_engine::NftEngine;
pub use nftables::{set_name, IpFamily, CHAIN_PRIORITY, DOOR_MARK};
pub use spec::{BackendKind, DoorSpec, FirewallSettings, PortSpec, PortSpecError, Proto};
pub use watch::FirewallWatch;

use iptables::Iptables;
use nft_engine::NftTransport;
use nftables::{ElementChange, NftOp};
use runner::Runner;

/// Which backends a door set needs, and where the stealth rule goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    nft: bool,
    iptables: bool,
    stealth_in_nft: bool,
    stealth_in_iptables: bool,
}

impl Plan {
    fn of(settings: &FirewallSettings, doors: &[DoorSpec]) -> Plan {
        let any = |kind: fn(&BackendKind) -> bool| doors.iter().any(|d| kind(&d.backend));
        let nft_doors = any(|b| matches!(b, BackendKind::Nftables));
        let ipt_doors = any(|b| matches!(b, BackendKind::Iptables));
        let stealth_in_iptables = settings.stealth && !nft_doors && ipt_doors;
        let stealth_in_nft = settings.stealth && !stealth_in_iptables;
        Plan {
            nft: nft_doors || stealth_in_nft,
            iptables: ipt_doors || stealth_in_iptables,
            stealth_in_nft,
            stealth_in_iptables,
        }
    }
}

/// All firewall backends spad uses, and the doors it opened that only a
/// timer closes.
#[derive(Debug)]
pub struct Firewall {
    settings: FirewallSettings,
    runner: Runner,
    nft: NftTransport,
    doors: BTreeMap<String, DoorSpec>,
    /// The doors in configuration order (the order of their rules).
    door_list: Vec<DoorSpec>,
    plan: Plan,
    /// Whether the iptables backend is in use, shared with watches.
    iptables_in_use: Arc<AtomicBool>,
    iptables: Iptables,
    /// Doors open by the iptables and command backends, per door.
    timer_open: BTreeMap<String, BTreeSet<IpAddr>>,
}

impl Firewall {
    /// The UDP ports the stealth rule drops in a backend that carries it
    /// (`on`): the SPA port and the other sniffed ones (fwknop's).
    fn stealth_ports(&self, on: bool) -> Vec<u16> {
        if !on {
            return Vec::new();
        }
        let mut ports = vec![self.settings.spa_port];
        ports.extend(&self.settings.other_udp_ports);
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// Checks the doors, then sets up every backend they use, replacing
    /// whatever spad's table/chain held before (no door is open after it),
    /// and removes spad's table/chain from backends no door uses any more.
    /// Running it twice gives the same ruleset. nftables is driven over
    /// netlink from spad itself (see [`NftEngine`]; logged at info).
    pub fn setup(
        settings: FirewallSettings,
        doors: &[DoorSpec],
    ) -> Result<Firewall, FirewallError> {
        Firewall::setup_with_nft_engine(settings, doors, None)
    }

    /// [`Firewall::setup`] with the nftables engine chosen by the caller:
    /// `Some(NftEngine::Process)` spawns `nft -f -` per transaction;
    /// `Some(NftEngine::Netlink)` or `None` sends netlink batches. Fails
    /// with [`FirewallError::NftNetlink`] when no NETLINK_NETFILTER socket
    /// can be opened (in `settings.netns` when set).
    pub fn setup_with_nft_engine(
        settings: FirewallSettings,
        doors: &[DoorSpec],
        engine: Option<NftEngine>,
    ) -> Result<Firewall, FirewallError> {
        check_table_name(&settings.table)?;
        check_doors(doors)?;
        let plan = Plan::of(&settings, doors);
        let mut firewall = Firewall {
            nft: NftTransport::open(engine, settings.netns.as_deref(), plan.nft)?,
            runner: Runner::new(settings.netns.clone()),
            iptables: Iptables::new(&settings.table),
            plan: Plan::of(&settings, &[]),
            settings,
            doors: BTreeMap::new(),
            door_list: Vec::new(),
            iptables_in_use: Arc::new(AtomicBool::new(false)),
            timer_open: BTreeMap::new(),
        };
        let result = firewall.install_fresh(plan, doors);
        firewall.set_doors(doors);
        if let Err(err) = result {
            // Leave nothing half-built behind.
            if let Err(cleanup) = firewall.teardown() {
                tracing::warn!(error = %cleanup, "could not remove a half-built firewall setup");
            }
            return Err(err);
        }
        tracing::info!(
            doors = firewall.doors.len(),
            nftables = plan.nft,
            nft_engine = %firewall.nft.engine(),
            iptables = plan.iptables,
            "firewall set up"
        );
        Ok(firewall)
    }

    /// Sets up the backends `plan` needs from scratch.
    fn install_fresh(&mut self, plan: Plan, doors: &[DoorSpec]) -> Result<(), FirewallError> {
        if plan.nft {
            self.plan.nft = true;
            let ops = nftables::setup_ops(
                &doors_of(doors, is_nft),
                &self.stealth_ports(plan.stealth_in_nft),
            );
            self.nft(&ops)?;
        }
        if plan.iptables {
            self.plan.iptables = true;
            self.iptables.install(
                &self.runner,
                &doors_of(doors, is_iptables),
                &[],
                &self.stealth_ports(plan.stealth_in_iptables),
            )?;
        }
        self.plan = plan;
        // A backend this door set does not use may hold spad's state from an
        // earlier run with another configuration: remove it, best effort
        // (the tool may well not be installed).
        if !plan.nft {
            if let Err(err) = self.nft(&nftables::teardown_ops()) {
                tracing::debug!(error = %err, "no stale nftables table removed");
            }
        }
        if !plan.iptables {
            if let Err(err) = self.iptables.teardown(&self.runner) {
                tracing::debug!(error = %err, "no stale iptables chain removed");
            }
        }
        Ok(())
    }

    fn nft(&mut self, ops: &[NftOp]) -> Result<(), FirewallError> {
        self.nft.run(&self.runner, &self.settings.table, ops)
    }

    /// How this firewall applies its nftables transactions.
    pub fn nft_engine(&self) -> NftEngine {
        self.nft.engine()
    }

    fn door(&self, door: &str) -> Result<&DoorSpec, FirewallError> {
        self.doors
            .get(door)
            .ok_or_else(|| FirewallError::UnknownDoor(door.to_owned()))
    }

    /// Opens `door` for `addr` for `seconds`; on an open door this extends
    /// it (the new time replaces the old). IPv4-mapped IPv6 addresses count
    /// as IPv4. `seconds == 0` closes the door.
    pub fn open(&mut self, door: &str, addr: IpAddr, seconds: u32) -> Result<(), FirewallError> {
        first_result(self.open_many(&[(door, addr, seconds)]))
    }

    /// Closes `door` for `addr`. Closing a door that is not open is fine
    /// (for the command backend, the close command only runs for addresses
    /// this `Firewall` opened).
    pub fn close(&mut self, door: &str, addr: IpAddr) -> Result<(), FirewallError> {
        first_result(self.close_many(&[(door, addr)]))
    }

    /// [`Firewall::open`] for each `(door, addr, seconds)`; one result per
    /// entry, in order. Every nftables entry goes into ONE transaction (one
    /// script); if nftables refuses it, the entries are retried one by one,
    /// so a bad entry fails alone. iptables and command doors are opened
    /// one by one, as by `open`. The same door and address twice: the last
    /// entry decides, as if they had run in order.
    pub fn open_many(&mut self, opens: &[(&str, IpAddr, u32)]) -> Vec<Result<(), FirewallError>> {
        let changes: Vec<ElementChange<'_>> = opens
            .iter()
            .map(|&(door, ip, seconds)| ElementChange {
                door,
                ip: canonical_ip(ip),
                seconds,
            })
            .collect();
        self.apply(&changes)
    }

    /// [`Firewall::close`] for each `(door, addr)`; one result per entry,
    /// in order, batched like [`Firewall::open_many`].
    pub fn close_many(&mut self, closes: &[(&str, IpAddr)]) -> Vec<Result<(), FirewallError>> {
        let changes: Vec<ElementChange<'_>> = closes
            .iter()
            .map(|&(door, ip)| ElementChange {
                door,
                ip: canonical_ip(ip),
                seconds: 0,
            })
            .collect();
        self.apply(&changes)
    }

    /// Applies opens (`seconds > 0`) and closes (`seconds == 0`): nftables
    /// ones as one transaction, falling back to one at a time; the others
    /// in order. Addresses are already canonical.
    fn apply(&mut self, changes: &[ElementChange<'_>]) -> Vec<Result<(), FirewallError>> {
        let mut results: Vec<Result<(), FirewallError>> = changes.iter().map(|_| Ok(())).collect();
        let mut nft_changes: Vec<usize> = Vec::new();
        for (index, change) in changes.iter().enumerate() {
            match self.doors.get(change.door).map(is_nft) {
                None => results[index] = Err(FirewallError::UnknownDoor(change.door.to_owned())),
                Some(true) => nft_changes.push(index),
                Some(false) => results[index] = self.change_timer_door(*change),
            }
        }
        if nft_changes.len() > 1 {
            let batch: Vec<ElementChange<'_>> = nft_changes.iter().map(|&i| changes[i]).collect();
            match self.nft(&nftables::batch_ops(&batch)) {
                Ok(()) => {
                    for change in &batch {
                        log_change(change);
                    }
                    return results;
                }
                Err(err) => tracing::warn!(
                    changes = batch.len(),
                    error = %err,
                    "nftables refused a batch of door changes; applying them one by one"
                ),
            }
        }
        for index in nft_changes {
            let change = changes[index];
            results[index] = self.nft(&nftables::batch_ops(&[change]));
            if results[index].is_ok() {
                log_change(&change);
            }
        }
        results
    }

    /// Opens or closes one door of a backend whose doors spad's timers
    /// close (iptables, command).
    fn change_timer_door(&mut self, change: ElementChange<'_>) -> Result<(), FirewallError> {
        let ElementChange {
            door,
            ip: addr,
            seconds,
        } = change;
        let spec = self.door(door)?;
        match (&spec.backend, seconds) {
            (BackendKind::Nftables, _) => {
                // Never reached: nftables doors are changed by `apply`.
                self.nft(&nftables::batch_ops(&[change]))?;
            }
            (BackendKind::Iptables, 0) => {
                self.iptables.close(&self.runner, spec, addr)?;
            }
            (BackendKind::Iptables, _) => {
                self.iptables.open(&self.runner, spec, addr)?;
            }
            (BackendKind::Command(templates), 0) => {
                let was_open = self
                    .timer_open
                    .get(door)
                    .is_some_and(|open| open.contains(&addr));
                if !was_open {
                    tracing::debug!(door, %addr, "door was not open; no close command run");
                    return Ok(());
                }
                command::run_template(
                    &self.runner,
                    templates,
                    "close",
                    door,
                    &spec.ports,
                    addr,
                    0,
                )?;
            }
            (BackendKind::Command(templates), _) => {
                command::run_template(
                    &self.runner,
                    templates,
                    "open",
                    door,
                    &spec.ports,
                    addr,
                    seconds,
                )?;
            }
        }
        if seconds == 0 {
            if let Some(open) = self.timer_open.get_mut(door) {
                open.remove(&addr);
                if open.is_empty() {
                    self.timer_open.remove(door);
                }
            }
        } else {
            self.timer_open
                .entry(door.to_owned())
                .or_default()
                .insert(addr);
        }
        log_change(&change);
        Ok(())
    }

    /// Takes over a command door that an earlier spad opened (from the
    /// state file after a restart): its open command's effect is still in
    /// place, so nothing runs now, but `close` will run the close command.
    /// Returns false for doors of other backends, which `setup` starts closed
    /// and which must be opened again instead.
    pub fn adopt(&mut self, door: &str, addr: IpAddr) -> bool {
        let is_command = self
            .doors
            .get(door)
            .is_some_and(|d| matches!(d.backend, BackendKind::Command(_)));
        if is_command {
            self.timer_open
                .entry(door.to_owned())
                .or_default()
                .insert(spa_proto::packet::canonical_ip(addr));
        }
        is_command
    }

    /// True when the kernel closes this door on time by itself (nftables
    /// element timeouts), so spad's timer is only a backstop.
    pub fn kernel_closes(&self, door: &str) -> bool {
        self.doors
            .get(door)
            .is_some_and(|d| matches!(d.backend, BackendKind::Nftables))
    }

    /// The addresses a door is open for, as far as spad's timer-closed
    /// backends (iptables, command) know; always empty for nftables doors,
    /// whose open set lives in the kernel.
    pub fn timer_open(&self, door: &str) -> Vec<IpAddr> {
        self.timer_open
            .get(door)
            .map(|open| open.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Runs the close command for every door the command backend opened,
    /// then removes spad's iptables chain and nftables table. Every step is
    /// tried; the first error is returned.
    pub fn teardown(&mut self) -> Result<(), FirewallError> {
        let mut first_error = None;
        let command_doors: Vec<String> = self
            .doors
            .values()
            .filter(|d| matches!(d.backend, BackendKind::Command(_)))
            .map(|d| d.name.clone())
            .collect();
        for door in command_doors {
            for addr in self.timer_open(&door) {
                if let Err(err) = self.close(&door, addr) {
                    tracing::warn!(door, %addr, error = %err, "close command failed at teardown");
                    first_error.get_or_insert(err);
                }
            }
        }
        if self.plan.iptables {
            match self.iptables.teardown(&self.runner) {
                Ok(()) => self.plan.iptables = false,
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        if self.plan.nft {
            match self.nft(&nftables::teardown_ops()) {
                Ok(()) => self.plan.nft = false,
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        self.timer_open.clear();
        self.iptables_in_use
            .store(self.plan.iptables, Ordering::Relaxed);
        match first_error {
            None => {
                tracing::info!("firewall torn down");
                Ok(())
            }
            Some(err) => Err(err),
        }
    }

    fn set_doors(&mut self, doors: &[DoorSpec]) {
        self.doors = doors.iter().map(|d| (d.name.clone(), d.clone())).collect();
        self.door_list = doors.to_vec();
        self.iptables_in_use
            .store(self.plan.iptables, Ordering::Relaxed);
    }

    /// Subscribes to nf_tables change events in the firewall's network
    /// namespace: the watch wakes when someone else changes spad's table
    /// or (while iptables doors are in use) the iptables-nft filter tables.
    /// Open it once, after `setup`, and run its `wait` in a thread.
    pub fn watch(&self) -> Result<FirewallWatch, FirewallError> {
        FirewallWatch::open(
            self.settings.netns.as_deref(),
            self.nft.portid(),
            &self.settings.table,
            Arc::clone(&self.iptables_in_use),
        )
    }

    /// Whether everything spad set up is still in place: its nftables table
    /// with the input chain, every rule and every door's sets; its iptables
    /// chain with the drop rules, the accepts of the doors it opened, and
    /// the jump from INPUT (both families). What is missing is logged.
    pub fn check_intact(&mut self) -> Result<bool, FirewallError> {
        if self.plan.nft {
            let nft_doors = doors_of(&self.door_list, is_nft);
            let expected_rules =
                nftables::chain_rules(&nft_doors, &self.stealth_ports(self.plan.stealth_in_nft))
                    .len();
            let state = self.nft.table_state(&self.settings.table)?;
            let missing_set = nft_doors.iter().find_map(|door| {
                [IpFamily::V4, IpFamily::V6]
                    .into_iter()
                    .map(|family| set_name(&door.name, family))
                    .find(|name| !state.sets.contains(name))
            });
            if !state.chain || state.rules != expected_rules || missing_set.is_some() {
                tracing::warn!(
                    table = %self.settings.table,
                    chain = state.chain,
                    rules = state.rules,
                    expected_rules,
                    missing_set = missing_set.as_deref().unwrap_or("none"),
                    "spad's nftables table is not as spad set it up"
                );
                return Ok(false);
            }
        }
        if self.plan.iptables {
            let ipt_doors = doors_of(&self.door_list, is_iptables);
            let open: Vec<(&str, IpAddr)> = self
                .timer_open
                .iter()
                .filter(|(name, _)| ipt_doors.iter().any(|d| &d.name == *name))
                .flat_map(|(name, addrs)| addrs.iter().map(move |a| (name.as_str(), *a)))
                .collect();
            let intact = self.iptables.intact(
                &self.runner,
                &ipt_doors,
                &open,
                &self.stealth_ports(self.plan.stealth_in_iptables),
            )?;
            if !intact {
                tracing::warn!("spad's iptables chain or its jump is not as spad set it up");
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Puts spad's setup back after someone flushed or changed it, then
    /// reopens the doors in `open` (door, address, seconds left). Fail
    /// closed: the nftables table is replaced in one transaction that
    /// already holds the drop rules, and the doors are added after it, so
    /// no moment lets a never-granted address in; iptables' chain is
    /// rewritten with the given iptables doors' accepts before its drops.
    /// Command doors are left alone (spad cannot know what their commands
    /// did). The outer error: the setup could not be restored (no door was
    /// reopened); else one result per `open` entry, in order.
    pub fn repair(
        &mut self,
        open: &[(&str, IpAddr, u32)],
    ) -> Result<Vec<Result<(), FirewallError>>, FirewallError> {
        if self.plan.nft {
            let ops = nftables::setup_ops(
                &doors_of(&self.door_list, is_nft),
                &self.stealth_ports(self.plan.stealth_in_nft),
            );
            self.nft(&ops)?;
        }
        let ipt_doors: Vec<DoorSpec> = doors_of(&self.door_list, is_iptables)
            .into_iter()
            .cloned()
            .collect();
        if self.plan.iptables {
            let ipt_open: Vec<(&str, IpAddr)> = open
                .iter()
                .filter(|(door, _, seconds)| {
                    *seconds > 0 && ipt_doors.iter().any(|d| d.name == *door)
                })
                .map(|(door, ip, _)| (*door, canonical_ip(*ip)))
                .collect();
            self.iptables.install(
                &self.runner,
                &ipt_doors.iter().collect::<Vec<_>>(),
                &ipt_open,
                &self.stealth_ports(self.plan.stealth_in_iptables),
            )?;
            for (door, ip) in ipt_open {
                self.timer_open
                    .entry(door.to_owned())
                    .or_default()
                    .insert(ip);
            }
        }
        let mut results: Vec<Result<(), FirewallError>> = open.iter().map(|_| Ok(())).collect();
        let mut nft_opens = Vec::new();
        let mut nft_at = Vec::new();
        for (index, &(door, ip, seconds)) in open.iter().enumerate() {
            match self.doors.get(door) {
                None => results[index] = Err(FirewallError::UnknownDoor(door.to_owned())),
                Some(spec) if is_nft(spec) && seconds > 0 => {
                    nft_opens.push((door, ip, seconds));
                    nft_at.push(index);
                }
                Some(_) => {}
            }
        }
        for (index, result) in nft_at.into_iter().zip(self.open_many(&nft_opens)) {
            results[index] = result;
        }
        tracing::info!(
            doors = open.len(),
            "firewall repaired: spad's setup was put back and the open doors reopened"
        );
        Ok(results)
    }

    /// Switches to a new door set (SIGHUP): doors that remain with the same
    /// backend stay open for the addresses they are open for; doors that go
    /// away (or change backend) are closed — their command-backend close
    /// commands run. Every step is tried; the first error is returned.
    pub fn reconfigure(&mut self, doors: &[DoorSpec]) -> Result<(), FirewallError> {
        check_doors(doors)?;
        let new_plan = Plan::of(&self.settings, doors);
        let same_backend = |old: &DoorSpec| {
            doors
                .iter()
                .any(|d| d.name == old.name && d.backend.name() == old.backend.name())
        };
        let mut first_error = None;

        // Command doors that go away get their close commands now.
        let leaving: Vec<String> = self
            .doors
            .values()
            .filter(|d| matches!(d.backend, BackendKind::Command(_)) && !same_backend(d))
            .map(|d| d.name.clone())
            .collect();
        for door in &leaving {
            for addr in self.timer_open(door) {
                if let Err(err) = self.close(door, addr) {
                    tracing::warn!(door, %addr, error = %err, "close command failed at reconfigure");
                    first_error.get_or_insert(err);
                }
            }
        }
        // What stays open by timer: doors that keep their backend.
        let old_doors = std::mem::take(&mut self.doors);
        self.timer_open
            .retain(|name, _| old_doors.get(name).is_some_and(&same_backend));

        let stealth_nft = self.stealth_ports(new_plan.stealth_in_nft);
        let nft_doors = doors_of(doors, is_nft);
        let nft_result = match (self.plan.nft, new_plan.nft) {
            (false, true) => self.nft(&nftables::setup_ops(&nft_doors, &stealth_nft)),
            (true, true) => {
                let old_names: Vec<&str> = old_doors
                    .values()
                    .filter(|d| is_nft(d))
                    .map(|d| d.name.as_str())
                    .collect();
                self.nft(&nftables::reconfigure_ops(
                    &old_names,
                    &nft_doors,
                    &stealth_nft,
                ))
            }
            (true, false) => self.nft(&nftables::teardown_ops()),
            (false, false) => Ok(()),
        };
        if let Err(err) = nft_result {
            first_error.get_or_insert(err);
        }

        let ipt_result = if new_plan.iptables {
            let open: Vec<(&str, IpAddr)> = self
                .timer_open
                .iter()
                .filter(|(name, _)| doors.iter().any(|d| &d.name == *name && is_iptables(d)))
                .flat_map(|(name, addrs)| addrs.iter().map(move |a| (name.as_str(), *a)))
                .collect();
            self.iptables.install(
                &self.runner,
                &doors_of(doors, is_iptables),
                &open,
                &self.stealth_ports(new_plan.stealth_in_iptables),
            )
        } else if self.plan.iptables {
            self.iptables.teardown(&self.runner)
        } else {
            Ok(())
        };
        if let Err(err) = ipt_result {
            first_error.get_or_insert(err);
        }

        self.plan = new_plan;
        self.set_doors(doors);
        match first_error {
            None => {
                tracing::info!(doors = self.doors.len(), "firewall reconfigured");
                Ok(())
            }
            Some(err) => Err(err),
        }
    }
}

/// The one result of a one-entry batch.
fn first_result(results: Vec<Result<(), FirewallError>>) -> Result<(), FirewallError> {
    results.into_iter().next().unwrap_or(Ok(()))
}

fn log_change(change: &ElementChange<'_>) {
    let ElementChange { door, ip, seconds } = *change;
    if seconds == 0 {
        tracing::debug!(door, %ip, "firewall: door closed");
    } else {
        tracing::debug!(door, %ip, seconds, "firewall: door opened");
    }
}

fn is_nft(door: &DoorSpec) -> bool {
    matches!(door.backend, BackendKind::Nftables)
}

fn is_iptables(door: &DoorSpec) -> bool {
    matches!(door.backend, BackendKind::Iptables)
}

fn doors_of(doors: &[DoorSpec], keep: fn(&DoorSpec) -> bool) -> Vec<&DoorSpec> {
    doors.iter().filter(|d| keep(d)).collect()
}

/// The table name must be a valid nft identifier and iptables chain name.
fn check_table_name(table: &str) -> Result<(), FirewallError> {
    let ok = (1..=28).contains(&table.len())
        && table.starts_with(|c: char| c.is_ascii_alphabetic())
        && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(FirewallError::BadTableName(table.to_owned()))
    }
}

/// Door names follow the protocol rule and are unique; port-guarding
/// backends have ports; templates using `{port}` have ports to use.
fn check_doors(doors: &[DoorSpec]) -> Result<(), FirewallError> {
    let mut seen = BTreeSet::new();
    for door in doors {
        door.name
            .parse::<DoorName>()
            .map_err(|source| FirewallError::BadDoorName {
                name: door.name.clone(),
                source,
            })?;
        if !seen.insert(door.name.as_str()) {
            return Err(FirewallError::DuplicateDoor(door.name.clone()));
        }
        match &door.backend {
            BackendKind::Nftables | BackendKind::Iptables if door.ports.is_empty() => {
                return Err(FirewallError::NoPorts {
                    door: door.name.clone(),
                    backend: door.backend.name(),
                });
            }
            BackendKind::Command(templates) if templates.uses_ports() && door.ports.is_empty() => {
                return Err(FirewallError::TemplateNeedsPorts(door.name.clone()));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn door(name: &str, backend: BackendKind, ports: &[&str]) -> DoorSpec {
        DoorSpec {
            name: name.into(),
            ports: ports.iter().map(|p| p.parse().unwrap()).collect(),
            backend,
        }
    }

    #[test]
    fn a_firewall_can_move_to_another_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Firewall>();
    }

    #[test]
    fn stealth_goes_where_the_doors_are() {
        let stealthy = FirewallSettings {
            stealth: true,
            ..FirewallSettings::default()
        };
        let nft = door("a", BackendKind::Nftables, &["tcp/22"]);
        let ipt = door("b", BackendKind::Iptables, &["tcp/22"]);
        let plan = Plan::of(&stealthy, std::slice::from_ref(&ipt));
        assert!(plan.iptables && plan.stealth_in_iptables && !plan.nft);
        let plan = Plan::of(&stealthy, &[ipt, nft]);
        assert!(plan.iptables && plan.nft && plan.stealth_in_nft && !plan.stealth_in_iptables);
        let plan = Plan::of(&stealthy, &[]);
        assert!(plan.nft && plan.stealth_in_nft && !plan.iptables);
        let plan = Plan::of(&FirewallSettings::default(), &[]);
        assert!(!plan.nft && !plan.iptables);
    }

    #[test]
    fn bad_door_sets_are_refused_before_any_command_runs() {
        let ok = door("ssh", BackendKind::Nftables, &["tcp/22"]);
        assert!(check_doors(std::slice::from_ref(&ok)).is_ok());
        assert!(matches!(
            check_doors(&[ok.clone(), ok.clone()]),
            Err(FirewallError::DuplicateDoor(name)) if name == "ssh"
        ));
        assert!(matches!(
            check_doors(&[door("Bad Name", BackendKind::Nftables, &["tcp/22"])]),
            Err(FirewallError::BadDoorName { .. })
        ));
        let err = check_doors(&[door("ssh", BackendKind::Iptables, &[])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "door \"ssh\" uses the iptables backend but lists no ports"
        );
        let templates = CommandTemplates::parse("x {port}", None, Duration::from_secs(1)).unwrap();
        assert!(matches!(
            check_doors(&[door("k", BackendKind::Command(templates), &[])]),
            Err(FirewallError::TemplateNeedsPorts(_))
        ));
        for bad in ["", "1spad", "sp ad", "a23456789012345678901234567890"] {
            assert!(check_table_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_table_name("spad_test1").is_ok());
    }
}
