//! Shell completions for one program (clap_complete), in the file names and
//! directories each shell looks in: bash `NAME`, zsh `_NAME`, fish `NAME.fish`.

use std::io;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// Writes bash, zsh and fish completions for the program `name` under `dir`.
pub fn write_all(name: &str, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let cmd = crate::programs()
        .into_iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, c)| c)
        .ok_or_else(|| io::Error::other(format!("no program named {name}")))?;
    let mut written = Vec::new();
    for (shell, sub, file) in [
        (Shell::Bash, "bash", name.to_owned()),
        (Shell::Zsh, "zsh", format!("_{name}")),
        (Shell::Fish, "fish", format!("{name}.fish")),
    ] {
        let shell_dir = dir.join(sub);
        std::fs::create_dir_all(&shell_dir)?;
        let path = shell_dir.join(file);
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), name, &mut out);
        std::fs::write(&path, out)?;
        written.push(path);
    }
    Ok(written)
}
