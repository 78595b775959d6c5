//! The process around the data path: `-t`, config errors with file:line, SIGHUP reload,
//! SIGTERM drain, and the epoll fallback when io_uring is blocked.

mod common;
use common::*;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn check(conf: &str) -> (i32, String) {
    let dir = temp_dir("check");
    let path = dir.join("t.conf");
    std::fs::write(&path, conf).unwrap();
    let out = Command::new(ringproxy_bin())
        .arg("-t")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn syntax_check_accepts_the_seed_and_names_file_and_line_on_errors() {
    let seed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/seed.conf")).unwrap();
    let (code, err) = check(&seed);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Syntax OK"), "{err}");
    let bad = seed.replace(
        "route=backend-port-8001",
        "route=backend-port-8001 loadfactor=500",
    );
    let (code, err) = check(&bad);
    assert_eq!(code, 1);
    assert!(
        err.contains("line 11 of") && err.contains("t.conf"),
        "{err}"
    );
    assert!(
        err.contains("BalancerMember")
            && err.contains("LoadFactor must be a number between 1..100"),
        "{err}"
    );
    let (code, err) = check("Listen 8080\nFooBar on\n");
    assert_eq!(code, 1);
    assert!(
        err.contains("line 2 of") && err.contains("Invalid command 'FooBar'"),
        "{err}"
    );
    let (code, err) = check(&seed.replace("LoadModule        slotmem_shm_module", "#"));
    assert_eq!(
        code, 1,
        "balancer without slotmem_shm_module must fail: {err}"
    );
}

#[test]
fn start_with_a_broken_config_exits_1_with_the_error() {
    let dir = temp_dir("broken");
    let path = dir.join("b.conf");
    std::fs::write(&path, "Listen 127.0.0.1:1\nProxyPass / balancer://nope/\n").unwrap();
    let out = Command::new(ringproxy_bin())
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("b.conf") && err.contains("line 2"), "{err}");
}

#[test]
fn sighup_reloads_for_new_requests_and_keeps_open_connections() {
    let (a, b) = (port_origin(), port_origin());
    let conf_a = format!("ProxyPass / http://127.0.0.1:{}/\n", a.port);
    let mut p = start_proxy("reload", &conf_a, 2);
    let mut c = Client::connect(p.port);
    assert_eq!(
        c.get("/x", "").text(),
        format!("Server response, port {}\n", a.port)
    );
    // Point the same path at b and reload.
    let conf = std::fs::read_to_string(p.conf_path()).unwrap();
    std::fs::write(
        p.conf_path(),
        conf.replace(
            &conf_a,
            &format!("ProxyPass / http://127.0.0.1:{}/\n", b.port),
        ),
    )
    .unwrap();
    p.proc.signal(libc::SIGHUP);
    let want_b = format!("Server response, port {}\n", b.port);
    let until = Instant::now() + Duration::from_secs(5);
    while !p.error_log().contains("configuration reloaded") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(20));
    // The connection that sat idle through the reload stays usable, and its very next request
    // runs in the new configuration.
    assert_eq!(c.get("/x", "").text(), want_b, "{}", p.error_log());
    // A broken config is rejected and the running one keeps serving.
    std::fs::write(p.conf_path(), "Listen 127.0.0.1:1\nNoSuchDirective x\n").unwrap();
    p.proc.signal(libc::SIGHUP);
    let until = Instant::now() + Duration::from_secs(5);
    while !p.error_log().contains("configuration rejected") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = p.error_log();
    assert!(
        log.contains("configuration rejected") && log.contains("NoSuchDirective"),
        "{log}"
    );
    assert_eq!(c.get("/x", "").text(), want_b);
    assert_eq!(Client::connect(p.port).get("/y", "").text(), want_b);
    assert_eq!(
        p.proc
            .stop(libc::SIGTERM, Duration::from_secs(10))
            .and_then(|s| s.code()),
        Some(0)
    );
}

#[test]
fn sigterm_drains_in_flight_requests_and_exits_0() {
    let slow = http_origin(|_, _| {
        std::thread::sleep(Duration::from_millis(800));
        ok("slow but complete")
    });
    let mut p = start_proxy(
        "drain",
        &format!("ProxyPass / http://127.0.0.1:{}/\n", slow.port),
        2,
    );
    let port = p.port;
    let inflight = std::thread::spawn(move || Client::connect(port).get("/slow", ""));
    // An idle keep-alive connection must not hold the drain up.
    let mut idle = Client::connect(port);
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    p.proc.signal(libc::SIGTERM);
    let r = inflight.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "slow but complete");
    let st = p
        .proc
        .wait(Duration::from_secs(10))
        .expect("ringproxy did not exit after SIGTERM");
    assert_eq!(st.code(), Some(0));
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "drain took {:?}",
        t0.elapsed()
    );
    assert!(idle.closed());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still accepting after drain"
    );
}

#[test]
fn io_backend_epoll_and_ring_serve_requests() {
    for (io, kind) in [("epoll", "on Epoll"), ("ring", "on Ring")] {
        let o = port_origin();
        let p = start_proxy(
            io,
            &format!("IoBackend {io}\nProxyPass / http://127.0.0.1:{}/\n", o.port),
            2,
        );
        let mut c = Client::connect(p.port);
        for _ in 0..50 {
            assert_eq!(c.get("/x", "").status, 200);
        }
        assert!(p.error_log().contains(kind), "{}", p.error_log());
    }
}

/// Runs ringproxy with io_uring_setup(2) denied by a seccomp filter, as Docker's default
/// profile does; returns the child.
fn spawn_without_io_uring(conf: &std::path::Path) -> std::process::Child {
    let mut cmd = Command::new(ringproxy_bin());
    cmd.arg("-f")
        .arg(conf)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: pre_exec runs in the forked child before exec; it only calls prctl.
    unsafe {
        cmd.pre_exec(|| {
            const NR_IO_URING_SETUP: u32 = 425;
            let filter = [
                libc::sock_filter {
                    code: 0x20,
                    jt: 0,
                    jf: 0,
                    k: 0,
                }, // ld [nr]
                libc::sock_filter {
                    code: 0x15,
                    jt: 0,
                    jf: 1,
                    k: NR_IO_URING_SETUP,
                }, // jeq
                libc::sock_filter {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: 0x0005_0000 | libc::EPERM as u32,
                }, // errno
                libc::sock_filter {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: 0x7fff_0000,
                }, // allow
            ];
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut _,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const _,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

#[test]
fn blocked_io_uring_falls_back_to_epoll_or_exits_when_uring_is_required() {
    let o = port_origin();
    let port = free_port();
    let dir = temp_dir("seccomp");
    let conf = dir.join("p.conf");
    std::fs::write(
        &conf,
        format!(
            "Listen 127.0.0.1:{port}\nProxyPass / http://127.0.0.1:{}/\n",
            o.port
        ),
    )
    .unwrap();
    let mut p = Proc {
        child: spawn_without_io_uring(&conf),
    };
    assert!(wait_listening(port, Duration::from_secs(5)));
    assert_eq!(Client::connect(port).get("/x", "").status, 200);
    p.stop(libc::SIGTERM, Duration::from_secs(10));
    let mut err = String::new();
    std::io::Read::read_to_string(p.child.stderr.as_mut().unwrap(), &mut err).unwrap();
    let notices: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("io_uring is not available"))
        .collect();
    assert!(
        !notices.is_empty() && notices[0].contains("running on the epoll backend"),
        "{err}"
    );

    std::fs::write(
        &conf,
        format!(
            "Listen 127.0.0.1:{port}\nIoBackend uring\nProxyPass / http://127.0.0.1:{}/\n",
            o.port
        ),
    )
    .unwrap();
    let mut p = Proc {
        child: spawn_without_io_uring(&conf),
    };
    let st = p.wait(Duration::from_secs(5)).expect("must exit");
    assert_eq!(st.code(), Some(1));
    let mut err = String::new();
    std::io::Read::read_to_string(p.child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("io_uring is not available") && err.contains("IoBackend uring"),
        "{err}"
    );
}

#[test]
fn a_port_already_listened_on_is_refused_not_shared() {
    // Another process's listener (SO_REUSEPORT would let ringproxy share it silently).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = temp_dir("taken");
    let conf = dir.join("t.conf");
    std::fs::write(
        &conf,
        format!("Listen 127.0.0.1:{port}\nProxyPass / http://127.0.0.1:1/\n"),
    )
    .unwrap();
    let out = Command::new(ringproxy_bin())
        .arg("-f")
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("could not bind to address 127.0.0.1:{port}")),
        "{err}"
    );
}
