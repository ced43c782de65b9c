//! spa-dist: writes the man pages and shell completions into a directory
//! (default target/assets), where the Debian package's assets point.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let out = match (args.next(), args.next()) {
        (Some(a), None) if a != "-h" && a != "--help" => PathBuf::from(a),
        (None, None) => PathBuf::from("target/assets"),
        _ => {
            eprintln!("usage: spa-dist [OUT_DIR]   (default target/assets)\nwrites OUT_DIR/man/*.{{1,5,8}} and OUT_DIR/completions/{{bash,zsh,fish}}/*");
            return ExitCode::from(2);
        }
    };
    match spa_dist::generate(&out) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("spa-dist: writing into {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}
