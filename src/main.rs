//! `ringproxy`: run (or with `-t`, check) an httpd mod_proxy_balancer configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: ringproxy -f FILE [-t] [-j THREADS] [--grace SECONDS]
  -f FILE        the httpd-syntax configuration (default conf/ringproxy.conf)
  -t             check the configuration, print 'Syntax OK' and exit, as apachectl -t
  -j THREADS     shard threads (default: the Threads directive, else one per core)
  --grace SECS   how long SIGTERM waits for in-flight requests (default 30)
  -v, --version  print the version";

fn main() -> ExitCode {
    fixed_mmap_threshold();
    match cli() {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("ringproxy: {msg}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn cli() -> Result<ExitCode, String> {
    use lexopt::prelude::*;
    let mut path = PathBuf::from("conf/ringproxy.conf");
    let mut check = false;
    let mut threads = None;
    let mut grace = Duration::from_secs(30);
    let mut p = lexopt::Parser::from_env();
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('f') => path = p.value().map_err(|e| e.to_string())?.into(),
            Short('t') => check = true,
            Short('j') => {
                let v: usize = p
                    .value()
                    .map_err(|e| e.to_string())?
                    .parse()
                    .map_err(|e| format!("-j: {e}"))?;
                threads = Some(v.max(1));
            }
            Long("grace") => {
                let v: f64 = p
                    .value()
                    .map_err(|e| e.to_string())?
                    .parse()
                    .map_err(|e| format!("--grace: {e}"))?;
                grace = Duration::from_secs_f64(v.max(0.0));
            }
            Short('v') | Long("version") => {
                println!("ringproxy {}", env!("CARGO_PKG_VERSION"));
                return Ok(ExitCode::SUCCESS);
            }
            Short('h') | Long("help") => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    let config = match ringproxy::conf::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringproxy: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if check {
        for w in &config.warnings {
            eprintln!("ringproxy: warning: {w}");
        }
        eprintln!("Syntax OK");
        return Ok(ExitCode::SUCCESS);
    }
    let opts = ringproxy::server::Options {
        config_path: path,
        threads,
        grace,
    };
    Ok(ExitCode::from(ringproxy::server::run(config, opts) as u8))
}

/// Keeps glibc's mmap threshold at its 128 KiB default. glibc raises it after the first large
/// free, and from then on the 256 KiB body buffers come from the heap, whose freed memory stays
/// resident: an idle connection's buffer would then be given back (proxy/mod.rs
/// `IDLE_SHRINK`) without the process getting any smaller.
fn fixed_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator tunable; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
