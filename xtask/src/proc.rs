//! Measuring a process tree from `/proc`: CPU time and resident memory summed
//! over a process and all its descendants (nginx and HAProxy fork workers,
//! a shell pipeline has several members), and the machine's other load.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Clock ticks per second in /proc (USER_HZ), fixed at 100 on Linux.
pub const USER_HZ: f64 = 100.0;

/// `(pid, ppid, cpu ticks of itself and its reaped children)` for every
/// process, read from `/proc/<pid>/stat`.
fn all_processes() -> Vec<(u32, u32, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let num = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Some((pid, num(4) as u32, num(14) + num(15) + num(16) + num(17)))
    })
    .collect()
}

/// The pids of `root` and all its descendants.
pub fn tree(root: u32) -> Vec<u32> {
    tree_with_cpu(root).into_iter().map(|(pid, _)| pid).collect()
}

fn tree_with_cpu(root: u32) -> Vec<(u32, u64)> {
    let procs = all_processes();
    let mut children: HashMap<u32, Vec<(u32, u64)>> = HashMap::new();
    let mut root_entry = None;
    for (pid, ppid, cpu) in procs {
        if pid == root {
            root_entry = Some((pid, cpu));
        }
        children.entry(ppid).or_default().push((pid, cpu));
    }
    let Some(root_entry) = root_entry else {
        return Vec::new();
    };
    let mut out = vec![root_entry];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i].0) {
            out.extend(kids.iter().copied());
        }
        i += 1;
    }
    out
}

/// CPU seconds used so far by the tree under `root`: every live member's own
/// time plus the time of the children it has reaped.
pub fn tree_cpu_seconds(root: u32) -> f64 {
    tree_with_cpu(root).iter().map(|(_, cpu)| *cpu).sum::<u64>() as f64 / USER_HZ
}

/// A field in kB from `/proc/<pid>/status`.
pub fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(field)
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// The machine's busy and total CPU ticks from /proc/stat (all cores).
pub fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else { return (0, 0) };
    let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Samples the resident memory of a process tree in the background and keeps
/// the peak. Each process's own high-water mark (VmHWM) is folded in too, so
/// a short spike between samples of a single process is not missed.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    /// Starts sampling the tree under `root` every 5 ms.
    pub fn start(root: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let pids = tree(root);
                    let sum: u64 = pids.iter().map(|pid| status_kb(*pid, "VmRSS:") * 1024).sum();
                    let hwm = pids
                        .iter()
                        .map(|pid| status_kb(*pid, "VmHWM:") * 1024)
                        .max()
                        .unwrap_or(0);
                    peak.fetch_max(sum.max(hwm), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        Self {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    /// Stops sampling and returns the peak in bytes.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// CPU seconds (user + system) of all children this process has reaped.
#[allow(unsafe_code)]
pub fn children_cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a full rusage into the pointer we pass.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Sends `sig` to `pid`.
#[allow(unsafe_code)]
pub fn kill(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}
