//! `ringload`: ringproxy's load tool. `ringload [options] URL...` runs a load (see
//! `ringload --help`); `ringload origin ...` is a fast HTTP/1.1 origin server for tests, demos
//! and benchmarks; `ringload compare A.json B.json` diffs two runs.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let code = match args.first().and_then(|s| s.to_str()) {
        Some("origin") => ringproxy::load::origin::main(args[1..].to_vec()),
        _ => ringproxy::load::run::main(args),
    };
    std::process::exit(code);
}
