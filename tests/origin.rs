//! End-to-end tests of `ringload origin`: the real binary on free ports, std clients, SIGTERM,
//! and the JSON counters it prints. Every wait is bounded; every process is killed by PID even
//! when an assertion fails (`Origin`'s Drop).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringproxy::load::origin::pattern_byte;

mod common;

const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// A running origin; killed (SIGKILL by PID) on drop unless `stop` already reaped it.
struct Origin {
    child: Option<Child>,
    ports: Vec<u16>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) on our own child's PID.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// Waits (bounded) for `child` to exit; None if it is still running at the deadline.
fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

impl Origin {
    /// Starts `ringload origin --ports P1,P2.. ARGS` on `n` free ports; retries on bind races.
    fn start(n: usize, args: &[&str]) -> Origin {
        for _attempt in 0..10 {
            let ports = free_ports(n);
            let list: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
            let log = common::temp_dir("origin").join("stderr");
            let child = Command::new(env!("CARGO_BIN_EXE_ringload"))
                .arg("origin")
                .arg("--ports")
                .arg(list.join(","))
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("spawn ringload");
            let mut o = Origin {
                child: Some(child),
                ports,
            };
            let ready = common::wait_ready(
                o.child.as_mut().unwrap(),
                &log,
                common::ORIGIN_READY,
                Duration::from_secs(10),
            );
            match ready {
                Ok(()) => return o,
                // A bind race with another test: try other ports. Dropping `o` kills it.
                Err(why) => eprintln!("origin did not start, retrying: {why}"),
            }
        }
        panic!("ringload origin did not start");
    }

    fn port(&self, i: usize) -> u16 {
        self.ports[i]
    }

    /// SIGTERM, wait for exit 0, return the JSON it printed.
    fn stop(mut self) -> Stats {
        let mut child = self.child.take().unwrap();
        // SAFETY: plain kill(2) on our own child's PID.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let st = wait_exit(&mut child, Duration::from_secs(10));
        if st.is_none() {
            // SAFETY: as above.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
            let _ = child.wait();
            panic!("origin ignored SIGTERM");
        }
        assert!(st.unwrap().success(), "exit status {st:?}");
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        Stats(out.trim().to_string())
    }
}

/// The JSON the origin prints, with just enough lookup for the tests.
struct Stats(String);

impl Stats {
    fn port_obj(&self, port: u16) -> &str {
        let key = format!("\"{port}\":{{\"connections\"");
        let at = self
            .0
            .find(&key)
            .unwrap_or_else(|| panic!("no port {port} in {}", self.0));
        let rest = &self.0[at..];
        let end = rest.find("}}").expect("port object end");
        &rest[..end + 1]
    }

    fn get(&self, port: u16, key: &str) -> u64 {
        let obj = self.port_obj(port);
        let k = format!("\"{key}\":");
        let at = obj.find(&k).unwrap_or_else(|| panic!("no {key} in {obj}")) + k.len();
        let digits: String = obj[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse().unwrap()
    }

    fn status(&self, port: u16, code: u16) -> u64 {
        let obj = self.port_obj(port);
        let s = &obj[obj.find("\"status\":{").expect("status") + 10..];
        let k = format!("\"{code}\":");
        match s.find(&k) {
            Some(at) => s[at + k.len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
                .parse()
                .unwrap(),
            None => 0,
        }
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_line(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.ends_with("\r\n"), "bad line {line:?}");
    line.truncate(line.len() - 2);
    line
}

/// Reads one response; `head_req`: the request was HEAD (no body whatever the headers say).
fn read_response(r: &mut impl BufRead, head_req: bool) -> Resp {
    let status_line = read_line(r);
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let line = read_line(r);
        if line.is_empty() {
            break;
        }
        let (n, v) = line.split_once(':').expect("field");
        headers.push((n.to_string(), v.trim().to_string()));
    }
    let mut resp = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    if head_req || status == 204 || status == 304 || status / 100 == 1 {
        return resp;
    }
    if resp.header("transfer-encoding") == Some("chunked") {
        for _ in 0..1_000_000 {
            let size_line = read_line(r);
            let size = usize::from_str_radix(&size_line, 16).expect("chunk size");
            if size == 0 {
                assert_eq!(read_line(r), "", "trailers");
                return resp;
            }
            let at = resp.body.len();
            resp.body.resize(at + size, 0);
            r.read_exact(&mut resp.body[at..]).unwrap();
            assert_eq!(read_line(r), "");
        }
        panic!("too many chunks");
    } else if let Some(n) = resp.header("content-length") {
        let n: usize = n.parse().unwrap();
        resp.body.resize(n, 0);
        r.read_exact(&mut resp.body).unwrap();
    } else {
        r.read_to_end(&mut resp.body).unwrap();
    }
    resp
}

fn get(port: u16, target: &str) -> Resp {
    let mut s = connect(port);
    write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    read_response(&mut BufReader::new(s), false)
}

/// True when the peer closed: EOF or a reset, and no bytes.
fn closed(r: &mut impl Read) -> bool {
    let mut b = [0u8; 1];
    match r.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

fn check_pattern(body: &[u8]) {
    for (i, &b) in body.iter().enumerate() {
        assert_eq!(b, pattern_byte(i as u64), "pattern byte {i}");
    }
}

#[test]
fn two_ports_answer_with_their_own_port() {
    let o = Origin::start(2, &[]);
    let (a, b) = (o.port(0), o.port(1));
    for p in [a, b] {
        let r = get(p, "/");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, format!("Server response, port {p}\n").as_bytes());
        assert_eq!(r.header("x-origin-port"), Some(p.to_string().as_str()));
        assert_eq!(r.header("content-type"), Some("text/plain"));
    }
    let st = o.stop();
    for p in [a, b] {
        assert_eq!(st.get(p, "requests"), 1, "{}", st.0);
        assert_eq!(st.status(p, 200), 1, "{}", st.0);
        assert!(st.get(p, "bytes_out") > 27);
        assert_eq!(st.get(p, "connections"), 1, "{}", st.0);
    }
}

#[test]
fn keep_alive_counts_one_connection() {
    let o = Origin::start(1, &["--io", "epoll"]);
    let p = o.port(0);
    let mut w = connect(p);
    let mut r = BufReader::new(w.try_clone().unwrap());
    for _ in 0..100 {
        write!(w, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let resp = read_response(&mut r, false);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, format!("Server response, port {p}\n").as_bytes());
    }
    drop((w, r));
    let st = o.stop();
    assert_eq!(st.get(p, "requests"), 100, "{}", st.0);
    assert_eq!(st.status(p, 200), 100);
    assert_eq!(st.get(p, "connections"), 1, "{}", st.0);
}

#[test]
fn pipelined_responses_come_in_order() {
    let o = Origin::start(1, &["-t", "2"]);
    let p = o.port(0);
    let mut w = connect(p);
    let mut all = String::new();
    for i in 1..=20 {
        if i == 7 {
            all.push_str(&format!("HEAD /?size={i} HTTP/1.1\r\nHost: x\r\n\r\n"));
        } else if i == 9 {
            all.push_str("POST /?status=201 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
        } else {
            all.push_str(&format!("GET /?size={i} HTTP/1.1\r\nHost: x\r\n\r\n"));
        }
    }
    w.write_all(all.as_bytes()).unwrap();
    let mut r = BufReader::new(w.try_clone().unwrap());
    for i in 1..=20 {
        let resp = read_response(&mut r, i == 7);
        if i == 9 {
            assert_eq!(resp.status, 201);
            continue;
        }
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-length"), Some(i.to_string().as_str()));
        if i != 7 {
            assert_eq!(resp.body.len(), i);
            check_pattern(&resp.body);
        }
    }
    let st = o.stop();
    assert_eq!(st.get(p, "requests"), 20);
    assert_eq!(st.get(p, "bytes_in"), 5);
    assert_eq!(st.status(p, 201), 1);
}

#[test]
fn status_204_head_and_sizes() {
    let o = Origin::start(1, &[]);
    let p = o.port(0);
    let mut w = connect(p);
    let mut r = BufReader::new(w.try_clone().unwrap());
    // 204: no body, and the connection stays in sync for the next request.
    write!(w, "GET /?status=204 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let resp = read_response(&mut r, false);
    assert_eq!(resp.status, 204);
    assert!(resp.header("content-length").is_none());
    // HEAD: the GET's headers, no body.
    write!(w, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let resp = read_response(&mut r, true);
    assert_eq!(resp.status, 200);
    let expect = format!("Server response, port {p}\n").len().to_string();
    assert_eq!(resp.header("content-length"), Some(expect.as_str()));
    // A big body after both proves that nothing stray was sent.
    write!(w, "GET /?size=1000000 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let resp = read_response(&mut r, false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), 1_000_000);
    check_pattern(&resp.body);
    write!(w, "GET /?status=503 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut r, false).status, 503);
    drop((w, r));
    let st = o.stop();
    assert_eq!(st.status(p, 204), 1);
    assert_eq!(st.status(p, 200), 2);
    assert_eq!(st.status(p, 503), 1);
    assert!(st.get(p, "bytes_out") > 1_000_000);
}

#[test]
fn chunked_bodies_decode() {
    let o = Origin::start(1, &["--chunked"]);
    let p = o.port(0);
    let r = get(p, "/");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(r.header("content-length").is_none());
    assert_eq!(r.body, format!("Server response, port {p}\n").as_bytes());
    for n in [0usize, 10, 65536, 200_001] {
        let r = get(p, &format!("/?size={n}"));
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        assert_eq!(r.body.len(), n);
        check_pattern(&r.body);
    }
    drop(o);

    let o = Origin::start(1, &["--body-size", "100k"]);
    let r = get(o.port(0), "/");
    assert_eq!(r.body.len(), 100 * 1024);
    check_pattern(&r.body);
}

/// Sends a 10 MB chunked upload to `?echo=1` from a second thread while reading the echo.
#[test]
fn echo_streams_a_chunked_upload() {
    echo_on(&["--io", "auto"]);
    echo_on(&["--io", "ring"]);
    echo_on(&["--io", "epoll"]);
}

fn echo_on(args: &[&str]) {
    let o = Origin::start(1, args);
    let p = o.port(0);
    let body: Vec<u8> = (0..10_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let body = std::sync::Arc::new(body);
    let mut w = connect(p);
    let r = BufReader::new(w.try_clone().unwrap());
    let sent = body.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(b"POST /?echo=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        let mut at = 0;
        let mut step = 1;
        while at < sent.len() {
            let n = (sent.len() - at).min(step);
            write!(w, "{n:x}\r\n").unwrap();
            w.write_all(&sent[at..at + n]).unwrap();
            w.write_all(b"\r\n").unwrap();
            at += n;
            step = (step * 3 + 7) % 100_000 + 1;
        }
        w.write_all(b"0\r\n\r\n").unwrap();
        w
    });
    let mut r = r;
    let resp = read_response(&mut r, false);
    let w = writer.join().unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert!(resp.body == *body, "echoed body differs");
    // Same connection, Content-Length upload: echoed with Content-Length.
    let mut w2 = w.try_clone().unwrap();
    w2.write_all(b"PUT /?echo=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n")
        .unwrap();
    w2.write_all(&body[..300_000]).unwrap();
    let resp = read_response(&mut r, false);
    assert_eq!(resp.header("content-length"), Some("300000"));
    assert!(resp.body == body[..300_000]);
    drop((w, w2, r));
    let st = o.stop();
    assert_eq!(st.get(p, "bytes_in"), 10_300_000);
    assert_eq!(st.get(p, "requests"), 2);
}

#[test]
fn fail_reset_and_garbage() {
    let o = Origin::start(1, &[]);
    let p = o.port(0);
    let mut s = connect(p);
    write!(s, "GET /?fail=reset HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(closed(&mut s), "reset: expected a close without a response");

    let mut s = connect(p);
    write!(s, "GET /?fail=garbage HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        got.starts_with(b"HTTP/1.1 2OO"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    let st = o.stop();
    assert_eq!(st.get(p, "requests"), 2);
    assert_eq!(st.status(p, 200), 0);
}

#[test]
fn close_and_http10() {
    let o = Origin::start(1, &[]);
    let p = o.port(0);
    let s = connect(p);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    write!(w, "GET /?close=1 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let resp = read_response(&mut r, false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(closed(&mut r));

    // HTTP/1.0 closes by default...
    let s = connect(p);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    write!(w, "GET / HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut r, false).status, 200);
    assert!(closed(&mut r));
    // ...and keeps alive when asked.
    let s = connect(p);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for _ in 0..2 {
        write!(w, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
        let resp = read_response(&mut r, false);
        assert_eq!(resp.header("connection"), Some("keep-alive"));
    }
    w.shutdown(Shutdown::Write).unwrap();
    assert!(closed(&mut r));
}

#[test]
fn expect_100_continue() {
    let o = Origin::start(1, &[]);
    let p = o.port(0);
    let s = connect(p);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    write!(
        w,
        "POST /?echo=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    )
    .unwrap();
    let interim = read_response(&mut r, false);
    assert_eq!(interim.status, 100);
    w.write_all(b"hello").unwrap();
    let resp = read_response(&mut r, false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"hello");
    // Without echo: the body is read and discarded, then the normal response.
    write!(
        w,
        "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    )
    .unwrap();
    assert_eq!(read_response(&mut r, false).status, 100);
    w.write_all(b"abc").unwrap();
    let resp = read_response(&mut r, false);
    assert_eq!(resp.body, format!("Server response, port {p}\n").as_bytes());
    let st = o.stop();
    assert_eq!(st.get(p, "bytes_in"), 8);
}

#[test]
fn delay_and_stats_file() {
    let dir = std::env::temp_dir().join(format!("ringload-origin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("stats.json");
    let o = Origin::start(
        1,
        &["--stats-file", path.to_str().unwrap(), "--delay", "50"],
    );
    let p = o.port(0);
    let t = Instant::now();
    assert_eq!(get(p, "/").status, 200);
    assert!(t.elapsed() >= Duration::from_millis(50));
    let t = Instant::now();
    assert_eq!(get(p, "/?delay=0").status, 200);
    assert!(t.elapsed() < Duration::from_secs(5));
    // The file catches up within a few 100 ms periods.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains("\"requests\":2,") {
            break;
        }
        assert!(Instant::now() < deadline, "stats file: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(o);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_exits_2() {
    let run = |args: &[&str]| -> (i32, String) {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ringload"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let st = wait_exit(&mut c, Duration::from_secs(10));
        if st.is_none() {
            // SAFETY: plain kill(2) on our own child's PID.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGKILL) };
            let _ = c.wait();
            panic!("{args:?} did not exit");
        }
        let mut err = String::new();
        c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        (st.unwrap().code().unwrap_or(-1), err)
    };
    let (code, err) = run(&["origin", "--bogus"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--bogus"), "{err}");
    let (code, err) = run(&["origin", "--port", "0"]);
    assert_eq!(code, 2, "{err}");
    // Without a subcommand ringload is the load generator, which needs a URL.
    let (code, err) = run(&[]);
    assert_eq!(code, 2);
    assert!(err.contains("no URL given"), "{err}");
    // A port someone else listens on.
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let (code, err) = run(&["origin", "--port", &port.to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "could not bind 127.0.0.1:{port}: Address already in use"
        )),
        "{err}"
    );
    // Another origin (SO_REUSEPORT) on the same port is refused as well.
    let o = Origin::start(1, &[]);
    let (code, err) = run(&["origin", "--port", &o.port(0).to_string()]);
    assert_eq!(code, 2, "{err}");
}
