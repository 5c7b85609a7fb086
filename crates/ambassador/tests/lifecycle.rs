//! The runtime conventions, checked on the real `ambassador` binary: admin
//! endpoints, SIGTERM drain, usage errors and exit codes.

const BIN: &str = env!("CARGO_BIN_EXE_ambassador");

#[test]
fn serves_admin_endpoints_and_drains_on_sigterm() {
    podkit_testkit::check_admin_and_sigterm(BIN, "ambassador", &["--http-forward", "127.0.0.1:0"]);
}

#[test]
fn usage_errors_exit_64_naming_the_flag() {
    podkit_testkit::check_usage(BIN, "ambassador");
}
