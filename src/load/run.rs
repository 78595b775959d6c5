//! `ringload [options] URL...`: parse, run, report, and set the exit code (0 ok, 1 a
//! `--fail-if` condition or the SLO search failed, 2 bad input).

use std::ffi::OsString;
use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::load::cli::{self, Command};
use crate::load::engine;
use crate::load::plan::{Plan, Schedule, Stop};
use crate::load::report::{self, failif, summary, units};

pub fn main(args: Vec<OsString>) -> i32 {
    let plan = match cli::parse(args) {
        Ok(Command::Run(plan)) => plan,
        Ok(Command::Compare(a, b)) => return compare(&a, &b),
        Ok(Command::Help) => {
            println!("{}", cli::USAGE);
            return 0;
        }
        Err(e) => {
            eprintln!("ringload: {e}");
            return 2;
        }
    };
    install_sigint();
    if plan.find_max.is_some() {
        return find_max(plan);
    }
    let progress = plan.outputs.progress && std::io::stderr().is_terminal();
    let mut last = (0.0, 0u64);
    let report = match engine::run(plan.clone(), |t, n, e| {
        if progress {
            let rate = (n - last.1) as f64 / (t - last.0).max(1e-3);
            last = (t, n);
            eprint!("\r{}", summary::progress_line(t, n, e, rate));
        }
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ringload: {e}");
            return 2;
        }
    };
    if progress {
        eprintln!();
    }
    if report.responses == 0 && report.conns.opened == 0 {
        let kinds: Vec<&str> = report.errors.keys().map(String::as_str).collect();
        let hint = if kinds.iter().any(|k| k.contains("tls-cert")) && !plan.insecure {
            "; --insecure accepts a self-signed certificate"
        } else {
            ""
        };
        let urls: Vec<&str> = plan.targets.iter().map(|t| t.url.as_str()).collect();
        eprintln!(
            "ringload: no connection to {} succeeded ({}){hint}",
            urls.join(", "),
            kinds.join(", ")
        );
        return 2;
    }
    print!("{}", summary::summary(&report));
    if let Err(e) = report::write_outputs(&report, &plan.outputs) {
        eprintln!("ringload: {e}");
        return 2;
    }
    let failed = failif::evaluate(&plan.fail_if, &report);
    for f in &failed {
        println!("fail-if: {f}");
    }
    i32::from(!failed.is_empty())
}

fn compare(a: &std::path::Path, b: &std::path::Path) -> i32 {
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
    };
    match read(a).and_then(|x| read(b).and_then(|y| report::compare::compare(&x, &y))) {
        Ok(table) => {
            print!("{table}");
            0
        }
        Err(e) => {
            eprintln!("ringload: {e}");
            2
        }
    }
}

/// Steps an open-loop rate up (×factor per step) until the SLO breaks; reports the knee: the
/// highest rate that met the SLO.
fn find_max(plan: Plan) -> i32 {
    let fm = plan.find_max.clone().expect("find_max set");
    let mut rate = fm.start_rate;
    let mut best: Option<f64> = None;
    println!(
        "{:>12} {:>12} {:>10} {:>10} {:>8}  verdict",
        "target/s", "achieved/s", "p50", "p99", "errors"
    );
    for _ in 0..64 {
        let mut step = plan.clone();
        step.rate = Some(Schedule::Constant { rate });
        step.stop = Stop::Duration(fm.step);
        step.find_max = None;
        let r = match engine::run(step, |_, _, _| {}) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("ringload: {e}");
                return 2;
            }
        };
        let mut broken = failif::unmet(&fm.slo, &r);
        if r.responses == 0 {
            broken.push(format!("no responses ({} errors)", r.error_count()));
        }
        let late = !r.verdict.trustworthy;
        println!(
            "{:>12.0} {:>12.0} {:>10} {:>10} {:>8}  {}",
            rate,
            r.rate(),
            units::dur(r.latency.value_at_quantile(0.5) as f64),
            units::dur(r.latency.value_at_quantile(0.99) as f64),
            r.error_count(),
            if !broken.is_empty() {
                format!("SLO broken: {}", broken.join("; "))
            } else if late {
                format!("generator limit: {}", r.verdict.reasons.join("; "))
            } else {
                "ok".to_string()
            }
        );
        if !broken.is_empty() || late || engine::INTERRUPTED.load(Ordering::Relaxed) {
            break;
        }
        best = Some(rate);
        rate *= fm.factor;
        std::thread::sleep(Duration::from_millis(200));
    }
    match best {
        Some(b) => {
            println!("knee: {b:.0} req/s is the highest rate tried that met the SLO");
            0
        }
        None => {
            println!(
                "knee: the SLO broke at the first rate ({:.0} req/s)",
                fm.start_rate
            );
            1
        }
    }
}

/// Ctrl-C stops the run early; the report of what ran still comes out.
fn install_sigint() {
    extern "C" fn on_sigint(_: libc::c_int) {
        engine::INTERRUPTED.store(true, Ordering::Relaxed);
    }
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
}
