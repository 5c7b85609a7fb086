//! The runtime conventions, checked on the real `tail-rewrite` binary: admin
//! endpoints, SIGTERM drain, usage errors and exit codes.

const BIN: &str = env!("CARGO_BIN_EXE_tail-rewrite");

#[test]
fn serves_admin_endpoints_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "hello\n").unwrap();
    let log = log.to_str().unwrap();
    podkit_testkit::check_admin_and_sigterm(BIN, "tail-rewrite", &["--follow", log, "--no-checkpoint"]);
}

#[test]
fn usage_errors_exit_64_naming_the_flag() {
    podkit_testkit::check_usage(BIN, "tail-rewrite");
}
