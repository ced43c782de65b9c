//! spa-dist: what a package installs besides the binaries — man pages
//! (spad(8), spa-client(1), spa-keygen(1), spad.toml(5)) and bash, zsh and
//! fish completions — generated from the binaries' own clap definitions and
//! the annotated example config, so they cannot drift from the code.
#![forbid(unsafe_code)]

pub mod completions;
pub mod config_page;
pub mod man;

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

/// The three programs: (binary name, man section, its clap command).
pub fn programs() -> Vec<(&'static str, &'static str, clap::Command)> {
    vec![
        ("spad", "8", spad::cli::Cli::command().name("spad")),
        (
            "spa-client",
            "1",
            spa_client::cli::Cli::command().name("spa-client"),
        ),
        (
            "spa-keygen",
            "1",
            spa_keygen::cli::Cli::command().name("spa-keygen"),
        ),
    ]
}

/// Writes `out/man/*.{1,5,8}` and `out/completions/{bash,zsh,fish}/…`; returns the files written.
pub fn generate(out: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let man_dir = out.join("man");
    std::fs::create_dir_all(&man_dir)?;
    for (name, section, mut cmd) in programs() {
        // Propagates global arguments (spa-client's -4/-6) into the subcommands,
        // whose own conflicts name them, before any subcommand is rendered alone.
        cmd.build();
        // One page per subcommand too (spad-status(8), …): the main page refers to them.
        for sub in cmd.get_subcommands() {
            let full = format!("{name}-{}", sub.get_name());
            let path = man_dir.join(format!("{full}.{section}"));
            std::fs::write(&path, man::render(sub.clone().name(full), section)?)?;
            written.push(path);
        }
        let path = man_dir.join(format!("{name}.{section}"));
        std::fs::write(&path, man::render(cmd, section)?)?;
        written.push(path);
        written.extend(completions::write_all(name, &out.join("completions"))?);
    }
    let path = man_dir.join("spad.toml.5");
    std::fs::write(&path, config_page::render(config_page::EXAMPLE_CONFIG))?;
    written.push(path);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_man_pages_their_subcommand_pages_and_nine_completions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = generate(dir.path()).expect("generate");
        let names: Vec<String> = files
            .iter()
            .map(|p| {
                p.strip_prefix(dir.path())
                    .expect("inside")
                    .display()
                    .to_string()
            })
            .collect();
        for want in [
            "man/spad.8",
            "man/spa-client.1",
            "man/spa-keygen.1",
            "man/spad.toml.5",
            "man/spad-status.8",
            "man/spad-close.8",
            "man/spa-keygen-set.1",
            "man/spa-client-open.1",
            "completions/bash/spad",
            "completions/zsh/_spa-keygen",
            "completions/fish/spa-client.fish",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        let completions = names
            .iter()
            .filter(|n| n.starts_with("completions/"))
            .count();
        assert_eq!(completions, 9, "{names:?}");
        let spad = std::fs::read_to_string(dir.path().join("man/spad.8")).expect("spad.8");
        assert!(spad.contains(".TH spad 8"), "{spad}");
        for sub in ["status", "close", "import\\-knockd"] {
            assert!(spad.contains(sub), "spad.8 lacks {sub}");
        }
        let keygen =
            std::fs::read_to_string(dir.path().join("man/spa-keygen.1")).expect("spa-keygen.1");
        assert!(keygen.contains(".TH spa-keygen 1"), "{keygen}");
        assert!(keygen.contains("set"), "{keygen}");
        let bash = std::fs::read_to_string(dir.path().join("completions/bash/spad")).expect("bash");
        assert!(
            bash.contains("status") && bash.contains("--prometheus"),
            "{bash}"
        );
    }
}
