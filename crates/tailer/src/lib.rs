//! podkit-tailer: follows log files through every kind of rotation, with
//! checkpoints that advance only when the consumer acknowledges delivery.
//!
//! Shared by `log-shipper` and `tail-rewrite`. It knows nothing of HTTP or
//! regular expressions. (Being built under issue 3.)
