//! The runtime conventions, checked on the real `log-shipper` binary: admin
//! endpoints, SIGTERM drain, usage errors and exit codes.

const BIN: &str = env!("CARGO_BIN_EXE_log-shipper");

#[test]
fn serves_admin_endpoints_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let logs = format!("{}/*.log", dir.path().display());
    podkit_testkit::check_admin_and_sigterm(
        BIN,
        "log-shipper",
        &["--follow", &logs, "--no-checkpoint", "--sink", "stdout"],
    );
}

#[test]
fn usage_errors_exit_64_naming_the_flag() {
    podkit_testkit::check_usage(BIN, "log-shipper");
}
