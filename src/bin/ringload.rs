//! `ringload`: ringproxy's load tool. Subcommands: `origin` (a fast HTTP/1.1 origin server for
//! tests, demos and benchmarks). The load generator will slot in as another arm of `main`.

fn main() {
    let mut args = std::env::args_os().skip(1);
    let sub = args.next();
    let code = match sub.as_ref().and_then(|s| s.to_str()) {
        Some("origin") => ringproxy::load::origin::main(args.collect()),
        _ => {
            eprintln!("ringload: the load generator is not built yet; available: origin");
            2
        }
    };
    std::process::exit(code);
}
