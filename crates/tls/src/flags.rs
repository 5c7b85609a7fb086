//! The TLS flags every binary shares: `--tls-ca-file`, `--tls-client-cert`,
//! `--tls-client-key`, `--tls-insecure` and, where a binary wants it,
//! `--tls-server-name`, each with an env twin under the binary's own prefix,
//! plus the binary's older spellings as hidden flags and env names.
//!
//! clap's derive fixes `env = "..."` at compile time and cannot take it from
//! a type parameter, so [`TlsArgs`] implements `clap::Args` by hand, reading
//! the prefix and the old spellings from a [`TlsFlags`] type the binary
//! writes. An old spelling is a real (hidden) flag of its own, so its env
//! name and its config-file key keep working too.

use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};

use crate::TlsOptions;

/// One TLS option, as flags and config keys name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsOption {
    /// `--tls-ca-file`, key `tls_ca_file`.
    CaFile,
    /// `--tls-client-cert`, key `tls_client_cert`.
    ClientCert,
    /// `--tls-client-key`, key `tls_client_key`.
    ClientKey,
    /// `--tls-insecure`, key `tls_insecure`.
    Insecure,
    /// `--tls-server-name`, key `tls_server_name`.
    ServerName,
}

impl TlsOption {
    /// Every option, in help order.
    pub const ALL: [Self; 5] = [
        Self::CaFile,
        Self::ClientCert,
        Self::ClientKey,
        Self::Insecure,
        Self::ServerName,
    ];

    /// The long flag without its dashes: `tls-ca-file`.
    pub const fn long(self) -> &'static str {
        match self {
            Self::CaFile => "tls-ca-file",
            Self::ClientCert => "tls-client-cert",
            Self::ClientKey => "tls-client-key",
            Self::Insecure => "tls-insecure",
            Self::ServerName => "tls-server-name",
        }
    }

    /// The config-file key: `tls_ca_file`.
    pub const fn key(self) -> &'static str {
        match self {
            Self::CaFile => "tls_ca_file",
            Self::ClientCert => "tls_client_cert",
            Self::ClientKey => "tls_client_key",
            Self::Insecure => "tls_insecure",
            Self::ServerName => "tls_server_name",
        }
    }

    /// The env twin after the binary's prefix: `TLS_CA_FILE`.
    pub const fn env_suffix(self) -> &'static str {
        match self {
            Self::CaFile => "TLS_CA_FILE",
            Self::ClientCert => "TLS_CLIENT_CERT",
            Self::ClientKey => "TLS_CLIENT_KEY",
            Self::Insecure => "TLS_INSECURE",
            Self::ServerName => "TLS_SERVER_NAME",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Self::CaFile => "Trust the CA certificates in this PEM file instead of the compiled-in public roots",
            Self::ClientCert => {
                "Present this PEM certificate chain to servers that ask for one (mutual TLS); needs --tls-client-key"
            }
            Self::ClientKey => "The PEM private key (PKCS#8, RSA or EC) of --tls-client-cert",
            Self::Insecure => "Do not verify server certificates. For tests only",
            Self::ServerName => {
                "The name to send as SNI and to verify the server certificate against, instead of the host connected to"
            }
        }
    }
}

impl fmt::Display for TlsOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "--{}", self.long())
    }
}

/// An older spelling of a TLS option that keeps working, hidden from
/// `--help`: the flag `--LONG` with env twin `ENV` (and, for binaries with a
/// config file, the key `LONG` or `LONG` with `_`).
#[derive(Debug, Clone, Copy)]
pub struct Legacy {
    /// The option it stands for.
    pub option: TlsOption,
    /// The old long flag, without dashes (`ca-file`).
    pub long: &'static str,
    /// The old env name (`AMBASSADOR_CA_FILE`).
    pub env: &'static str,
}

/// A binary's choices for its TLS flags; see [`TlsArgs`].
pub trait TlsFlags {
    /// The binary's env prefix, with its trailing `_`: `"WAIT_FOR_"` gives
    /// `WAIT_FOR_TLS_CA_FILE`.
    const ENV_PREFIX: &'static str;
    /// The `--help` heading the flags go under.
    const HELP_HEADING: &'static str = "TLS";
    /// Whether to offer `--tls-server-name` (where one name can stand for
    /// every TLS connection the binary makes).
    const SERVER_NAME: bool = false;
    /// Older spellings kept as hidden flags and env names.
    const LEGACY: &'static [Legacy] = &[];
}

/// The TLS flags, to `#[command(flatten)]` into a binary's `Args`; `F`
/// names the env prefix and the old spellings. The parsed values are in
/// [`TlsArgs::options`].
///
/// When both a new and an old spelling are given, the one from the higher
/// source wins (command line > environment > config file); between equals,
/// the new one. `--tls-insecure` is on when any spelling turns it on.
pub struct TlsArgs<F> {
    /// What the flags (and env, and config file) said.
    pub options: TlsOptions,
    flags: PhantomData<fn() -> F>,
}

impl<F> TlsArgs<F> {
    /// The parsed options.
    pub fn into_options(self) -> TlsOptions {
        self.options
    }
}

impl<F: TlsFlags> TlsArgs<F> {
    /// The clap argument ids that hold `option`: its own, then the old
    /// spellings, so a binary can ask clap where the value came from (the
    /// command line, the environment, a config file's top level).
    pub fn arg_ids(option: TlsOption) -> impl Iterator<Item = String> {
        ids::<F>(option)
    }
}

impl<F> From<TlsOptions> for TlsArgs<F> {
    fn from(options: TlsOptions) -> Self {
        Self {
            options,
            flags: PhantomData,
        }
    }
}

impl<F> Default for TlsArgs<F> {
    fn default() -> Self {
        TlsOptions::default().into()
    }
}

impl<F> Clone for TlsArgs<F> {
    fn clone(&self) -> Self {
        self.options.clone().into()
    }
}

impl<F> fmt::Debug for TlsArgs<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.options.fmt(f)
    }
}

fn offered<F: TlsFlags>(option: TlsOption) -> bool {
    option != TlsOption::ServerName || F::SERVER_NAME
}

fn legacy_id(legacy: &Legacy) -> String {
    format!("{}~{}", legacy.option.key(), legacy.long)
}

/// The arg ids holding values for `option`: its own, then its old spellings.
fn ids<F: TlsFlags>(option: TlsOption) -> impl Iterator<Item = String> {
    std::iter::once(option.key().to_owned()).chain(F::LEGACY.iter().filter(move |l| l.option == option).map(legacy_id))
}

fn with_kind(arg: Arg, option: TlsOption) -> Arg {
    match option {
        TlsOption::Insecure => arg.action(ArgAction::SetTrue),
        TlsOption::ServerName => arg
            .action(ArgAction::Set)
            .value_name("NAME")
            .value_parser(value_parser!(String)),
        _ => arg
            .action(ArgAction::Set)
            .value_name("FILE")
            .value_parser(value_parser!(PathBuf)),
    }
}

/// The value of `option` from whichever spelling has the highest source.
fn pick<F: TlsFlags, T: Clone + Send + Sync + 'static>(m: &ArgMatches, option: TlsOption) -> Option<T> {
    let mut best: Option<(ValueSource, T)> = None;
    for id in ids::<F>(option) {
        let (Some(source), Some(value)) = (m.value_source(&id), m.get_one::<T>(&id)) else {
            continue;
        };
        if best.as_ref().is_none_or(|(s, _)| source > *s) {
            best = Some((source, value.clone()));
        }
    }
    best.map(|(_, v)| v)
}

impl<F: TlsFlags> clap::FromArgMatches for TlsArgs<F> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(TlsOptions {
            ca_file: pick::<F, PathBuf>(m, TlsOption::CaFile),
            client_cert: pick::<F, PathBuf>(m, TlsOption::ClientCert),
            client_key: pick::<F, PathBuf>(m, TlsOption::ClientKey),
            insecure: ids::<F>(TlsOption::Insecure).any(|id| m.get_flag(&id)),
            server_name: if F::SERVER_NAME {
                pick::<F, String>(m, TlsOption::ServerName)
            } else {
                None
            },
        }
        .into())
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl<F: TlsFlags> clap::Args for TlsArgs<F> {
    fn augment_args(mut cmd: Command) -> Command {
        for option in TlsOption::ALL.into_iter().filter(|o| offered::<F>(*o)) {
            let arg = Arg::new(option.key())
                .long(option.long())
                .env(format!("{}{}", F::ENV_PREFIX, option.env_suffix()))
                .help(option.help())
                .help_heading(F::HELP_HEADING);
            cmd = cmd.arg(with_kind(arg, option));
        }
        for legacy in F::LEGACY.iter().filter(|l| offered::<F>(l.option)) {
            let arg = Arg::new(legacy_id(legacy)).long(legacy.long).env(legacy.env).hide(true);
            cmd = cmd.arg(with_kind(arg, legacy.option));
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}
