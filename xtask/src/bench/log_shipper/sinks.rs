//! `ship-sinks`: the 2M-line ship log shipped to each platform sink (Loki,
//! Elasticsearch `_bulk`, OTLP/HTTP JSON) and to the NDJSON HTTP sink, each
//! with gzip off and on (`--compression gzip`). The receivers are the strict
//! stand-ins of `podkit_testkit::platform` (they decode and check every
//! request as the real servers would, answer as they do, and here only count
//! the entries) and the NDJSON counting sink, in xtask's process, not
//! measured. Each platform sink's CPU per line is given as a multiple of the
//! NDJSON sink's at the same gzip setting, in the same run. With
//! `PODKIT_BENCH_BASELINE=BIN`, that build's platform sinks run too (an
//! A/B of a change in the same run).

use std::path::PathBuf;

use anyhow::Result;

use super::{Expect, LINES, Out, Platform, log_shipper_with, ship_log, ship_once};
use crate::bench::{Contender, Env, Scenario};

pub fn scenario() -> Scenario {
    Scenario {
        name: "ship-sinks",
        about: "2M lines from a file's head to each platform sink (Loki, Elasticsearch, OTLP), gzip off and on, \
                as multiples of the NDJSON HTTP sink",
        unit: "lines",
        tools: &[],
        setup,
    }
}

/// The sinks, NDJSON (the baseline) first.
const SINKS: [(&str, Out); 4] = [
    ("ndjson", Out::Http),
    ("loki", Out::Platform(Platform::Loki)),
    ("elasticsearch", Out::Platform(Platform::Elasticsearch)),
    ("otlp", Out::Platform(Platform::Otlp)),
];

/// Contender names and baselines: every sink with gzip off then on, each
/// measured against the NDJSON sink (index 0 off, 1 on) with the same gzip.
fn plan() -> Vec<(String, Out, bool, usize)> {
    let mut plan = Vec::new();
    for (name, out) in SINKS {
        for gzip in [false, true] {
            let label = if gzip { format!("{name} gzip") } else { name.to_owned() };
            plan.push((label, out, gzip, usize::from(gzip)));
        }
    }
    plan
}

fn setup(env: &Env) -> Result<Vec<Contender>> {
    let follow = ship_log()?.display().to_string();
    let expect = Expect {
        units: LINES,
        records: LINES,
    };
    let contender = |name: String, bin: PathBuf, out: Out, gzip: bool, baseline: usize| {
        let mut args = vec!["--follow".to_owned(), follow.clone()];
        if gzip {
            args.extend(["--compression".to_owned(), "gzip".to_owned()]);
        }
        let launch = log_shipper_with(bin, args);
        let work = env.work.clone();
        Contender {
            name,
            podkit: true,
            baseline: Some(baseline),
            run: Box::new(move || ship_once(&work, expect, out, &launch)),
        }
    };
    let plan = plan();
    let mut contenders: Vec<Contender> = plan
        .iter()
        .map(|(name, out, gzip, baseline)| contender(name.clone(), env.bin("log-shipper"), *out, *gzip, *baseline))
        .collect();
    // Another log-shipper build's platform sinks, for an A/B in the same run
    // (against this build's NDJSON sink).
    if let Some(bin) = std::env::var_os("PODKIT_BENCH_BASELINE") {
        for (name, out, gzip, baseline) in plan.into_iter().filter(|p| p.1 != Out::Http) {
            contenders.push(contender(
                format!("{name} (baseline build)"),
                PathBuf::from(&bin),
                out,
                gzip,
                baseline,
            ));
        }
    }
    Ok(contenders)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sink_is_measured_against_ndjson_at_its_gzip_setting() {
        let plan = plan();
        assert_eq!(plan.len(), 8);
        assert_eq!((plan[0].0.as_str(), plan[1].0.as_str()), ("ndjson", "ndjson gzip"));
        for (name, _, gzip, baseline) in &plan {
            assert_eq!(name.ends_with(" gzip"), *gzip, "{name}");
            assert_eq!(plan[*baseline].2, *gzip, "{name} compares with the same gzip setting");
            assert!(plan[*baseline].0.starts_with("ndjson"), "{name}");
        }
    }
}
