//! CPU cost of following a file that an app writes at a steady rate, with
//! and without inotify. Run the writer and the follower as two processes:
//!
//! ```text
//! follow_cpu write  /tmp/f.log 50000 10      # 50k lines/s for 10 s
//! follow_cpu follow /tmp/f.log 10 notify     # or `poll`
//! ```
//!
//! The follower prints its own user+system CPU time and the lines it got.

#![allow(clippy::print_stdout)]

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use podkit_tailer::{CancellationToken, NoopEvents, Tailer, TailerConfig};

fn cpu_seconds() -> f64 {
    // utime and stime are fields 14 and 15 of /proc/self/stat, in clock ticks (100 Hz).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 =
        f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0.0) + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("write") => {
            let rate: u64 = args[2].parse()?;
            let secs: u64 = args[3].parse()?;
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&args[1])?;
            let start = Instant::now();
            let total = rate * secs;
            for seq in 0..total {
                f.write_all(format!("2026-11-27T00:00:00Z INFO request {seq} handled in 12 ms\n").as_bytes())?;
                if seq % 100 == 0
                    && let Some(ahead) = Duration::from_secs_f64(seq as f64 / rate as f64).checked_sub(start.elapsed())
                {
                    std::thread::sleep(ahead);
                }
            }
            println!("wrote {total} lines in {:.2} s", start.elapsed().as_secs_f64());
        }
        Some("follow") => {
            let secs: u64 = args[2].parse()?;
            let notify = args.get(3).map(String::as_str) != Some("poll");
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let mut config = TailerConfig::new([args[1].clone()]);
                config.use_notify = notify;
                config.start_at = podkit_tailer::StartAt::Tail;
                let (tailer, mut rx) = Tailer::new(config, Arc::new(NoopEvents))?;
                let shutdown = CancellationToken::new();
                let task = tokio::spawn(tailer.run(shutdown.clone()));
                let (mut lines, mut batches) = (0u64, 0u64);
                let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
                while let Ok(Some(batch)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                    lines += batch.len() as u64;
                    batches += 1;
                    batch.ack();
                }
                // Per-thread CPU, read before the tailer's threads end.
                let mut threads = Vec::new();
                for t in std::fs::read_dir("/proc/self/task")?.flatten() {
                    let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                    let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                    let f: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
                    let ticks: u64 = f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0)
                        + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
                    threads.push(format!("{}={:.2}s", name.trim(), ticks as f64 / 100.0));
                }
                println!("threads: {}", threads.join(" "));
                shutdown.cancel();
                while let Some(b) = rx.recv().await {
                    b.ack();
                }
                task.await??;
                println!(
                    "follow ({}): {lines} lines in {batches} batches, CPU {:.2} s over {secs} s",
                    if notify { "notify" } else { "poll" },
                    cpu_seconds()
                );
                Ok::<_, Box<dyn std::error::Error>>(())
            })?;
        }
        _ => return Err("usage: follow_cpu write PATH RATE SECS | follow PATH SECS [notify|poll]".into()),
    }
    Ok(())
}
