//! Which value each setting takes, and from where: command-line flags, then
//! the matching blocks and `[defaults]` of `~/.spa/config.toml`, then those of
//! `/etc/spa/client.toml`, then the key file's `[[gateway]]`, then spa-client's
//! own defaults. The first source that gives a value wins (as in ssh_config).

use std::path::{Path, PathBuf};

use spa_keys::{ClientKey, Gateway, KeyFileError};
use spa_proto::packet::DEFAULT_PORT;
use spa_proto::{DoorName, ServerId};

use crate::keyfile::choose_gateway;
use crate::profile::{
    load_profile, FamilyChoice, Layer, Origin, ProfileError, ProfileFile, Setting, SYSTEM_CONFIG,
    USER_CONFIG,
};
use crate::target::{HostSpec, HostSpecError};

/// How long `--wait` tries when nothing says otherwise, in seconds.
pub const DEFAULT_WAIT_TIMEOUT: u64 = 10;

/// The profile files in the order they are consulted.
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    /// Highest precedence first.
    pub files: Vec<ProfileFile>,
}

impl Profiles {
    /// `--config FILE` alone (like `ssh -F`), else `~/.spa/config.toml` then
    /// `/etc/spa/client.toml`. Files that do not exist count as empty.
    pub fn load(config: Option<&Path>, home: Option<&Path>) -> Result<Profiles, ProfileError> {
        let paths: Vec<PathBuf> = match config {
            Some(p) => vec![p.to_owned()],
            None => home
                .map(|h| h.join(USER_CONFIG))
                .into_iter()
                .chain([PathBuf::from(SYSTEM_CONFIG)])
                .collect(),
        };
        let files = paths
            .iter()
            .map(|p| load_profile(p, home))
            .collect::<Result<_, _>>()?;
        Ok(Profiles { files })
    }

    /// What the profiles say for the host typed.
    pub fn layer_for(&self, host: Option<&str>) -> Layer {
        self.files
            .iter()
            .fold(Layer::default(), |acc, f| acc.over(f.layer_for(host)))
    }
}

/// Why the settings do not add up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// No HOST typed, none in the profiles or the key file.
    #[error(
        "no HOST given, and neither a profile nor the key file's gateway {0} names one: give HOST"
    )]
    NoHost(ServerId),
    /// The key file's host is not a host.
    #[error(transparent)]
    Host(#[from] HostSpecError),
    /// HOST:PORT and --port disagree.
    #[error("HOST {host} gives a port and --port gives {flag}: give the port once")]
    TwoPorts {
        /// HOST as typed.
        host: String,
        /// The --port value.
        flag: u16,
    },
    /// No gateway of the key file fits.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// No $HOME and no key given.
    #[error("no key file given and $HOME is not set: pass --key FILE")]
    NoHome,
}

/// Everything a command needs to send, each with its origin.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Where the packet goes.
    pub host: Setting<HostSpec>,
    /// The gateway's SPA port.
    pub port: Setting<u16>,
    /// The gateway of the key file.
    pub gateway: Gateway,
    /// How the gateway was chosen.
    pub gateway_origin: Origin,
    /// The door, when one is known.
    pub door: Option<Setting<DoorName>>,
    /// Seconds to ask for (`None`: the door's default).
    pub seconds: Option<Setting<u16>>,
    /// Address families.
    pub family: Setting<FamilyChoice>,
    /// Ask for the observed address.
    pub observed: Setting<bool>,
    /// TCP port to wait for.
    pub wait: Option<Setting<u16>>,
    /// How long to wait.
    pub wait_timeout: Setting<u64>,
}

/// The key file to use: the layer's, else `~/.spa/key`.
pub fn key_path(layer: &Layer, home: Option<&Path>) -> Result<Setting<PathBuf>, SettingsError> {
    match &layer.key {
        Some(k) => Ok(k.clone()),
        None => home
            .map(|h| Setting::built_in(h.join(".spa").join("key")))
            .ok_or(SettingsError::NoHome),
    }
}

/// Merges `flags` (from the command line) over the profiles' layer for
/// `typed`; the typed host itself becomes the hostname unless a profile maps
/// it to another (ssh's `HostName`).
pub fn merged(flags: Layer, profiles: &Profiles, typed: Option<&HostSpec>) -> Layer {
    let mut layer = flags.over(profiles.layer_for(typed.map(|t| t.host.as_str())));
    if layer.hostname.is_none() {
        layer.hostname = typed.map(|t| Setting::flag(t.clone()));
    }
    layer
}

/// Completes a merged layer with the key file: picks the gateway, then fills
/// host and port from it, then the built-in defaults. `port_flag` is
/// `--port` (or HOST:PORT typed), which beats a port inside a profile's hostname.
pub fn resolve(
    layer: Layer,
    port_flag: Option<u16>,
    typed: Option<&HostSpec>,
    key: &ClientKey,
) -> Result<Resolved, SettingsError> {
    let server_id = layer.server_id.as_ref().map(|s| &s.value);
    let host_for_choice = layer.hostname.as_ref().map(|h| &h.value);
    let gateway = choose_gateway(key, server_id, host_for_choice.or(typed))?.clone();
    let gateway_origin = match &layer.server_id {
        Some(s) => s.origin.clone(),
        None => Origin::KeyFile(key.path.clone()),
    };
    let host = match layer.hostname {
        Some(h) => h,
        None => {
            let text = gateway
                .host
                .as_deref()
                .ok_or_else(|| SettingsError::NoHost(gateway.server_id.clone()))?;
            Setting {
                value: text.parse()?,
                origin: Origin::KeyFile(key.path.clone()),
            }
        }
    };
    let port = match (port_flag, host.value.port) {
        (Some(f), Some(h)) if f != h && host.origin == Origin::CommandLine => {
            return Err(SettingsError::TwoPorts {
                host: host.value.to_string(),
                flag: f,
            })
        }
        (Some(p), _) => Setting::flag(p),
        (None, Some(p)) => Setting {
            value: p,
            origin: host.origin.clone(),
        },
        (None, None) => match (layer.port, gateway.port) {
            (Some(p), _) => p,
            (None, Some(p)) => Setting {
                value: p,
                origin: Origin::KeyFile(key.path.clone()),
            },
            (None, None) => Setting::built_in(DEFAULT_PORT),
        },
    };
    Ok(Resolved {
        host,
        port,
        gateway,
        gateway_origin,
        door: layer.door,
        seconds: layer.seconds,
        family: layer
            .family
            .unwrap_or_else(|| Setting::built_in(FamilyChoice::Any)),
        observed: layer.observed.unwrap_or_else(|| Setting::built_in(false)),
        wait: layer.wait,
        wait_timeout: layer
            .wait_timeout
            .unwrap_or_else(|| Setting::built_in(DEFAULT_WAIT_TIMEOUT)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::parse_profile;
    use spa_proto::{SecretBytes, UserSecret};

    const USER: &str = "/home/alice/.spa/config.toml";
    const SYSTEM: &str = "/etc/spa/client.toml";

    fn profiles(user: &str, system: &str) -> Profiles {
        let parse = |p: &str, t: &str| {
            parse_profile(Path::new(p), t, Some(Path::new("/home/alice")))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        Profiles {
            files: vec![parse(USER, user), parse(SYSTEM, system)],
        }
    }

    fn key() -> ClientKey {
        let mut gw1 = Gateway::new("gw1.example.net".parse().unwrap_or_else(|_| panic!("id")));
        gw1.host = Some("gw1.example.net".into());
        gw1.port = Some(62299);
        let gw2 = Gateway::new("gw2".parse().unwrap_or_else(|_| panic!("id")));
        ClientKey {
            user: "alice".into(),
            secret: UserSecret::new(SecretBytes::new([1; 32])),
            gateways: vec![gw1, gw2],
            path: "/home/alice/.spa/key".into(),
        }
    }

    fn typed(s: &str) -> HostSpec {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn flags_beat_the_user_file_which_beats_the_system_file() -> Result<(), SettingsError> {
        let p = profiles(
            "[[host]]\nname = \"gw1\"\nhostname = \"gw1.example.net\"\ndoor = \"ssh\"\n",
            "[defaults]\nseconds = 45\ndoor = \"web\"\nwait = 22\n\n[[host]]\nname = \"gw*\"\nseconds = 60\n",
        );
        let t = typed("gw1");
        let flags = Layer {
            wait: Some(Setting::flag(2222)),
            ..Layer::default()
        };
        let r = resolve(merged(flags, &p, Some(&t)), None, Some(&t), &key())?;
        assert_eq!(r.host.value.host, "gw1.example.net");
        assert_eq!(
            r.host.origin.to_string(),
            format!("{USER}:3 ([[host]] gw1)")
        );
        assert_eq!(
            r.gateway.server_id.as_str(),
            "gw1.example.net",
            "chosen by hostname"
        );
        assert_eq!(r.door.map(|d| d.value.to_string()), Some("ssh".into()));
        assert_eq!(
            r.seconds.map(|s| (s.value, s.origin.to_string())),
            Some((60, format!("{SYSTEM}:8 ([[host]] gw*)"))),
            "a system [[host]] beats the system [defaults]"
        );
        assert_eq!(
            r.wait.map(|w| (w.value, w.origin)),
            Some((2222, Origin::CommandLine))
        );
        assert_eq!(
            (r.port.value, r.port.origin.to_string()),
            (62299, "key file /home/alice/.spa/key".to_owned())
        );
        assert_eq!(r.family.value, FamilyChoice::Any);
        assert_eq!(r.family.origin, Origin::BuiltIn);
        Ok(())
    }

    #[test]
    fn an_unknown_alias_is_the_host_itself() -> Result<(), SettingsError> {
        let p = profiles("[[host]]\nname = \"gw1\"\nhostname = \"10.0.0.1\"\n", "");
        let t = typed("gw2:62211");
        let r = resolve(
            merged(Layer::default(), &p, Some(&t)),
            t.port,
            Some(&t),
            &key(),
        )?;
        assert_eq!(
            (r.host.value.host.as_str(), r.host.origin.clone()),
            ("gw2", Origin::CommandLine)
        );
        assert_eq!((r.port.value, r.port.origin), (62211, Origin::CommandLine));
        assert_eq!(
            r.gateway.server_id.as_str(),
            "gw2",
            "the gateway whose server_id is HOST"
        );
        Ok(())
    }

    #[test]
    fn no_host_anywhere_falls_back_to_the_key_file() -> Result<(), SettingsError> {
        let p = profiles("[defaults]\nserver_id = \"gw1.example.net\"\n", "");
        let r = resolve(merged(Layer::default(), &p, None), None, None, &key())?;
        assert_eq!(r.host.value.host, "gw1.example.net");
        assert_eq!(
            r.host.origin,
            Origin::KeyFile("/home/alice/.spa/key".into())
        );
        assert_eq!(
            r.gateway_origin.to_string(),
            format!("{USER}:2 ([defaults])")
        );
        let p = profiles("[defaults]\nserver_id = \"gw2\"\n", "");
        let err = resolve(merged(Layer::default(), &p, None), None, None, &key()).map(|_| ());
        assert!(
            matches!(&err, Err(SettingsError::NoHost(id)) if id.as_str() == "gw2"),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn the_key_comes_from_the_profile_else_home() -> Result<(), SettingsError> {
        let p = profiles("[[host]]\nname = \"gw1\"\nkey = \"~/.spa/work.key\"\n", "");
        let t = typed("gw1");
        let layer = merged(Layer::default(), &p, Some(&t));
        let k = key_path(&layer, Some(Path::new("/home/alice")))?;
        assert_eq!(k.value, PathBuf::from("/home/alice/.spa/work.key"));
        let k = key_path(&Layer::default(), Some(Path::new("/home/alice")))?;
        assert_eq!(
            (k.value, k.origin),
            (PathBuf::from("/home/alice/.spa/key"), Origin::BuiltIn)
        );
        Ok(())
    }
}
