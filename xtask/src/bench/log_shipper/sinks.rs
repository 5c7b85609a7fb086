//! `ship-sinks`: the 2M-line ship log shipped to each platform sink (Loki,
//! Elasticsearch `_bulk`, OTLP/HTTP; JSON, and Loki's and OTLP's protobuf
//! encodings) and to the NDJSON HTTP sink, each with gzip off and on
//! (`--compression gzip`; a protobuf Loki push is always snappy-compressed,
//! so it runs once, measured against NDJSON without gzip). The receivers,
//! in xtask's process and not measured, are the stand-ins of
//! `podkit_testkit::platform` in their counting mode (each request
//! answered as the strict stand-in answers a valid one, its entries counted
//! without decoding it: a receiver that decoded every request would set
//! the pace, and the shipper's per-second costs would spread over more
//! lines) and the NDJSON counting sink. Each platform sink's CPU per line
//! is given as a multiple of the NDJSON sink's at the same gzip setting, in
//! the same run. With `PODKIT_BENCH_BASELINE=BIN`, that build's platform
//! sinks run too (an A/B of a change in the same run).

use std::path::PathBuf;

use anyhow::Result;

use super::{Expect, LINES, Out, Platform, log_shipper_with, ship_log, ship_once};
use crate::bench::{Contender, Env, Scenario};

pub fn scenario() -> Scenario {
    Scenario {
        name: "ship-sinks",
        about: "2M lines from a file's head to each platform sink (Loki, Elasticsearch, OTLP; JSON and protobuf), \
                gzip off and on, as multiples of the NDJSON HTTP sink",
        unit: "lines",
        tools: &[],
        setup,
    }
}

/// The sinks, NDJSON (the baseline) first: name, target, extra flags, and
/// whether it also runs with gzip.
const SINKS: [(&str, Out, &[&str], bool); 6] = [
    ("ndjson", Out::Http, &[], true),
    ("loki", Out::Platform(Platform::Loki), &[], true),
    (
        "loki protobuf",
        Out::Platform(Platform::Loki),
        &["--loki-encoding", "protobuf"],
        false,
    ),
    ("elasticsearch", Out::Platform(Platform::Elasticsearch), &[], true),
    ("otlp", Out::Platform(Platform::Otlp), &[], true),
    (
        "otlp protobuf",
        Out::Platform(Platform::Otlp),
        &["--otlp-encoding", "protobuf"],
        true,
    ),
];

/// One contender of the plan.
struct Planned {
    name: String,
    out: Out,
    args: Vec<String>,
    /// The NDJSON contender (its index) with the same gzip setting.
    baseline: usize,
}

/// Every sink with gzip off then (where it applies) on, each measured
/// against the NDJSON sink (index 0 off, 1 on) with the same gzip.
fn plan() -> Vec<Planned> {
    let mut plan = Vec::new();
    for (name, out, args, with_gzip) in SINKS {
        for gzip in [false, true] {
            if gzip && !with_gzip {
                continue;
            }
            let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
            if gzip {
                args.extend(["--compression".to_owned(), "gzip".to_owned()]);
            }
            plan.push(Planned {
                name: if gzip { format!("{name} gzip") } else { name.to_owned() },
                out,
                args,
                baseline: usize::from(gzip),
            });
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
    let contender = |name: String, bin: PathBuf, p: &Planned| {
        let mut args = vec!["--follow".to_owned(), follow.clone()];
        args.extend(p.args.iter().cloned());
        let launch = log_shipper_with(bin, args);
        let (work, out) = (env.work.clone(), p.out);
        Contender {
            name,
            podkit: true,
            baseline: Some(p.baseline),
            run: Box::new(move || ship_once(&work, expect, out, &launch)),
        }
    };
    let plan = plan();
    let mut contenders: Vec<Contender> = plan
        .iter()
        .map(|p| contender(p.name.clone(), env.bin("log-shipper"), p))
        .collect();
    // Another log-shipper build's platform sinks, for an A/B in the same run
    // (against this build's NDJSON sink).
    if let Some(bin) = std::env::var_os("PODKIT_BENCH_BASELINE") {
        for p in plan.iter().filter(|p| p.out != Out::Http) {
            contenders.push(contender(
                format!("{} (baseline build)", p.name),
                PathBuf::from(&bin),
                p,
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
        assert_eq!(plan.len(), 11);
        assert_eq!(
            (plan[0].name.as_str(), plan[1].name.as_str()),
            ("ndjson", "ndjson gzip")
        );
        let gzip = |p: &Planned| p.args.iter().any(|a| a == "gzip");
        for p in &plan {
            assert_eq!(p.name.ends_with(" gzip"), gzip(p), "{}", p.name);
            assert_eq!(
                gzip(&plan[p.baseline]),
                gzip(p),
                "{} compares with the same gzip setting",
                p.name
            );
            assert!(plan[p.baseline].name.starts_with("ndjson"), "{}", p.name);
        }
        // A protobuf Loki push is snappy-compressed, never gzipped.
        assert!(plan.iter().any(|p| p.name == "loki protobuf"));
        assert!(!plan.iter().any(|p| p.name == "loki protobuf gzip"));
    }
}
