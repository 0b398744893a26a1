//! `fsgate hash-key KEY`: print the SHA-256 of an API key, as
//! `api_keys_sha256` in the configuration wants it.
//!
//! Owns reading the key (argument, or stdin with `-` so that it stays out of
//! shell history and process lists) and printing the hash; the hashing itself
//! is [`crate::tenants::hash_key`], the same function that checks requests.

use std::io::Read;
use std::process::ExitCode;

/// Arguments of `fsgate hash-key`.
#[derive(Debug, clap::Args)]
pub struct HashKeyArgs {
    /// The API key, or `-` to read it from stdin (one line; the trailing
    /// newline is not part of the key). Prefer `-`: arguments end up in shell
    /// history and process lists.
    pub key: String,
}

/// Prints the hash; exit 1 when the key is empty or stdin unreadable.
pub fn run(args: HashKeyArgs) -> ExitCode {
    let key = if args.key == "-" {
        let mut input = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut input) {
            eprintln!("fsgate hash-key: cannot read the key from stdin: {e}");
            return ExitCode::FAILURE;
        }
        let line = input.lines().next().unwrap_or("");
        line.to_string()
    } else {
        args.key
    };
    if key.is_empty() {
        eprintln!("fsgate hash-key: the key is empty");
        return ExitCode::FAILURE;
    }
    if key.trim() != key {
        eprintln!(
            "fsgate hash-key: warning: the key has leading or trailing whitespace, which is \
             part of the key (clients rarely send it)"
        );
    }
    println!("{}", crate::tenants::hash_key(&key));
    ExitCode::SUCCESS
}
