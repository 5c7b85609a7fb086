//! Throughput of the tailer alone: reads one file from its head to its end
//! and prints lines/s and MB/s (the consumer only counts and acks).
//!
//! ```text
//! cargo run --release -p podkit-tailer --example throughput -- /tmp/tailer-1g.log [SIZE_MB [READ_KIB]]
//! ```
//!
//! Creates the file (realistic log lines of 40 to 240 bytes, SIZE_MB
//! megabytes, default 1024) if it does not exist. Compare with
//! `cat FILE > /dev/null` and `wc -l FILE` on the same (cached) file.

#![allow(clippy::print_stdout)]

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use podkit_tailer::{CancellationToken, NoopEvents, Tailer, TailerConfig};

fn generate(path: &Path, megabytes: u64) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let target = megabytes << 20;
    let (mut written, mut i) = (0u64, 0u64);
    let words = [
        "GET",
        "/api/v1/orders",
        "200",
        "user=alice",
        "latency_ms=12",
        "trace=4bf92f3577b34da6",
        "ok",
    ];
    while written < target {
        let mut line = format!(
            "2026-11-26T23:59:{:02}.{:06}Z INFO app: request {i}",
            i % 60,
            i % 1_000_000
        );
        for k in 0..(i * 7919 % 23) as usize {
            line.push(' ');
            line.push_str(words[(i as usize + k) % words.len()]);
        }
        line.push('\n');
        w.write_all(line.as_bytes())?;
        written += line.len() as u64;
        i += 1;
    }
    w.flush()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/tmp/tailer-1g.log".into());
    let mb: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1024);
    let read_kib: Option<usize> = args.next().map(|s| s.parse()).transpose()?;
    if !Path::new(&path).exists() {
        println!("generating {path} ({mb} MiB)...");
        generate(Path::new(&path), mb)?;
    }
    let size = std::fs::metadata(&path)?.len();
    let mut config = TailerConfig::new([path.clone()]);
    config.use_notify = false;
    if let Some(kib) = read_kib {
        config.read_bytes = kib * 1024;
    }
    let (tailer, mut rx) = Tailer::new(config, Arc::new(NoopEvents))?;
    let shutdown = CancellationToken::new();
    let start = Instant::now();
    let task = tokio::spawn(tailer.run(shutdown.clone()));
    let (mut lines, mut bytes) = (0u64, 0u64);
    while let Some(batch) = rx.recv().await {
        lines += batch.len() as u64;
        for line in batch.lines() {
            bytes += line.bytes.len() as u64;
        }
        let end = batch.byte_range().end;
        batch.ack();
        if end >= size {
            break;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    shutdown.cancel();
    drop(rx);
    task.await??;
    println!(
        "tailer: {lines} lines, {:.1} MB in {elapsed:.3} s = {:.2} M lines/s, {:.0} MB/s (file {:.1} MB; line bytes {bytes})",
        size as f64 / 1e6,
        lines as f64 / elapsed / 1e6,
        size as f64 / elapsed / 1e6,
        size as f64 / 1e6,
    );
    Ok(())
}
