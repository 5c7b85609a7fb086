//! podkit-tests: the home of tests that span several binaries (pod
//! simulations on loopback and a shared temp dir) and of the container tests
//! that run our images on a docker engine. The tests live in `tests/tests/`.
