use super::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::UNIX_EPOCH;

// ---- counting allocator (per thread, so parallel tests don't interfere) ----

struct Counting;
thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}
fn bump() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        bump();
        unsafe { System.realloc(p, l, n) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}
#[global_allocator]
static GA: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

// ---- a fixed record ----

struct Rec {
    remote: SocketAddr,
    local: SocketAddr,
    line: Vec<u8>,
    method: Vec<u8>,
    path: Vec<u8>,
    query: Option<Vec<u8>>,
    proto: Vec<u8>,
    status: Option<u16>,
    body: u64,
    req_h: Vec<(&'static str, Vec<u8>)>,
    resp_h: Vec<(&'static str, Vec<u8>)>,
    env: Vec<(&'static str, Vec<u8>)>,
    server: Vec<u8>,
    handler: Option<Vec<u8>>,
    conn: u8,
    ka: u64,
    bin: u64,
    bout: u64,
    start: SystemTime,
    dur: Duration,
    ssl: Vec<(&'static str, Vec<u8>)>,
}

fn lookup<'a>(v: &'a [(&'static str, Vec<u8>)], name: &str, ci: bool) -> Option<&'a [u8]> {
    v.iter()
        .find(|(k, _)| {
            if ci {
                k.eq_ignore_ascii_case(name)
            } else {
                *k == name
            }
        })
        .map(|(_, v)| v.as_slice())
}

impl LogRecord for Rec {
    fn remote_addr(&self) -> SocketAddr {
        self.remote
    }
    fn local_addr(&self) -> SocketAddr {
        self.local
    }
    fn request_line(&self) -> &[u8] {
        &self.line
    }
    fn method(&self) -> &[u8] {
        &self.method
    }
    fn path(&self) -> &[u8] {
        &self.path
    }
    fn query(&self) -> Option<&[u8]> {
        self.query.as_deref()
    }
    fn protocol(&self) -> &[u8] {
        &self.proto
    }
    fn status(&self) -> Option<u16> {
        self.status
    }
    fn body_bytes(&self) -> u64 {
        self.body
    }
    fn request_header(&self, name: &str) -> Option<&[u8]> {
        lookup(&self.req_h, name, true)
    }
    fn response_header(&self, name: &str) -> Option<&[u8]> {
        lookup(&self.resp_h, name, true)
    }
    fn env(&self, name: &str) -> Option<&[u8]> {
        lookup(&self.env, name, false)
    }
    fn server_name(&self) -> &[u8] {
        &self.server
    }
    fn handler(&self) -> Option<&[u8]> {
        self.handler.as_deref()
    }
    fn conn_status(&self) -> u8 {
        self.conn
    }
    fn keepalive_requests(&self) -> u64 {
        self.ka
    }
    fn bytes_in(&self) -> u64 {
        self.bin
    }
    fn bytes_out(&self) -> u64 {
        self.bout
    }
    fn start_time(&self) -> SystemTime {
        self.start
    }
    fn duration(&self) -> Duration {
        self.dur
    }
    fn ssl_var(&self, name: &str) -> Option<&[u8]> {
        lookup(&self.ssl, name, false)
    }
}

const T0: u64 = 1_449_726_134; // 2015-12-10 05:42:14 UTC

fn rec() -> Rec {
    Rec {
        remote: "127.0.0.1:51234".parse().unwrap(),
        local: "127.0.0.1:443".parse().unwrap(),
        line: b"GET /service1/index.html HTTP/1.1".to_vec(),
        method: b"GET".to_vec(),
        path: b"/service1/index.html".to_vec(),
        query: None,
        proto: b"HTTP/1.1".to_vec(),
        status: Some(200),
        body: 28,
        req_h: vec![
            ("User-Agent", b"curl/7.35.0".to_vec()),
            ("Host", b"localhost".to_vec()),
        ],
        resp_h: vec![("Content-Type", b"text/html".to_vec())],
        env: vec![
            ("BALANCER_WORKER_ROUTE", b"backend-port-8000".to_vec()),
            ("UNIQUE_ID", b"awYs9Ett7ic8puQn8-dF7AAAAAM".to_vec()),
        ],
        server: b"localhost".to_vec(),
        handler: Some(b"proxy-server".to_vec()),
        conn: b'+',
        ka: 0,
        bin: 538,
        bout: 1402,
        start: UNIX_EPOCH + Duration::new(T0, 390_998_000),
        dur: Duration::from_micros(7856),
        ssl: vec![],
    }
}

fn render(fmt: &str, r: &Rec) -> String {
    let f = LogFormat::compile(fmt).unwrap_or_else(|e| panic!("{fmt}: {e}"));
    let mut out = Vec::new();
    f.render(r, &mut out);
    assert_eq!(out.last(), Some(&b'\n'));
    out.pop();
    String::from_utf8(out).unwrap()
}

/// Local broken-down time computed directly with libc, independent of the
/// module's formatting code.
fn tm(sec: u64) -> libc::tm {
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let t = sec as libc::time_t;
    unsafe { libc::localtime_r(&t, &mut tm) };
    tm
}

fn clf(sec: u64) -> String {
    let t = tm(sec);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let off = t.tm_gmtoff;
    format!(
        "[{:02}/{}/{}:{:02}:{:02}:{:02} {}{:02}{:02}]",
        t.tm_mday,
        months[t.tm_mon as usize],
        t.tm_year + 1900,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
        if off < 0 { '-' } else { '+' },
        off.abs() / 3600,
        off.abs() % 3600 / 60
    )
}

fn ymdhms(sec: u64) -> String {
    let t = tm(sec);
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.tm_year + 1900,
        t.tm_mon + 1,
        t.tm_mday,
        t.tm_hour,
        t.tm_min,
        t.tm_sec
    )
}

const COMMON: &str = "%h %l %u %t \"%r\" %>s %b";
const COMBINED: &str = "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-agent}i\"";
const EXTENDED: &str = "%h %{GEOIP_COUNTRY_CODE}e %u [%{%Y-%m-%d %H:%M:%S}t.%{usec_frac}t] \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\" %v %A %p %R %{BALANCER_WORKER_ROUTE}e %X \"%{cookie}n\" %{UNIQUE_ID}e %{SSL_PROTOCOL}x %{SSL_CIPHER}x %I %O %{ratio}n%% %D %{ModSecTimeIn}e %{ApplicationTime}e %{ModSecTimeOut}e %{ModSecAnomalyScoreIn}e %{ModSecAnomalyScoreOut}e";

#[test]
fn common_and_combined() {
    let r = rec();
    let t = clf(T0);
    assert_eq!(
        render(COMMON, &r),
        format!("127.0.0.1 - - {t} \"GET /service1/index.html HTTP/1.1\" 200 28")
    );
    assert_eq!(
        render(COMBINED, &r),
        format!(
            "127.0.0.1 - - {t} \"GET /service1/index.html HTTP/1.1\" 200 28 \"-\" \"curl/7.35.0\""
        )
    );
    assert_eq!(render("%{begin}t|%{end}t", &r), format!("{t}|{t}"));
    // A CLF stamp has this exact shape regardless of TZ.
    let b = t.as_bytes();
    assert_eq!(b.len(), 28);
    assert_eq!(
        (b[0], b[3], b[7], b[12], b[21], b[27]),
        (b'[', b'/', b'/', b':', b' ', b']')
    );
    assert!(b[22] == b'+' || b[22] == b'-');
}

#[test]
fn netnea_extended_sample_line() {
    let mut r = rec();
    r.ssl = vec![
        ("SSL_PROTOCOL", b"TLSv1.2".to_vec()),
        ("SSL_CIPHER", b"ECDHE-RSA-AES256-GCM-SHA384".to_vec()),
    ];
    // Sanity of the test's own expectation: CET gives the sample's 06:42:14.
    match tm(T0).tm_gmtoff {
        0 => assert_eq!(ymdhms(T0), "2015-12-10 05:42:14"),
        3600 => assert_eq!(ymdhms(T0), "2015-12-10 06:42:14"),
        _ => {}
    }
    let got = render(EXTENDED, &r);
    let want = format!(
        "127.0.0.1 - - [{}.390998] \"GET /service1/index.html HTTP/1.1\" 200 28 \"-\" \"curl/7.35.0\" localhost 127.0.0.1 443 proxy-server backend-port-8000 + \"-\" awYs9Ett7ic8puQn8-dF7AAAAAM TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384 538 1402 -% 7856 - - - - -",
        ymdhms(T0)
    );
    assert_eq!(got, want);

    // The brief's sample (no TLS vars): 28 fields, counting the bracketed
    // time and the quoted request line as one field each.
    r.ssl.clear();
    let got = render(EXTENDED, &r);
    let want = format!(
        "127.0.0.1 - - [{}.390998] \"GET /service1/index.html HTTP/1.1\" 200 28 \"-\" \"curl/7.35.0\" localhost 127.0.0.1 443 proxy-server backend-port-8000 + \"-\" awYs9Ett7ic8puQn8-dF7AAAAAM - - 538 1402 -% 7856 - - - - -",
        ymdhms(T0)
    );
    assert_eq!(got, want);
    assert_eq!(got.split(' ').count(), 28 + 1 + 2);

    // Member without a route: empty field, i.e. two spaces.
    r.env[0].1.clear();
    assert!(render(EXTENDED, &r).contains(" proxy-server  + "));
    r.env.remove(0);
    assert!(render(EXTENDED, &r).contains(" proxy-server - + "));
}

#[test]
fn time_tokens_and_fractions() {
    let mut r = rec();
    r.start = UNIX_EPOCH + Duration::new(T0, 5_000);
    r.dur = Duration::from_micros(1_012_345);
    assert_eq!(render("%{usec_frac}t %{msec_frac}t", &r), "000005 000");
    assert_eq!(render("%{begin:usec_frac}t", &r), "000005");
    // end = start + duration
    assert_eq!(
        render("%{end:usec_frac}t %{end:msec_frac}t", &r),
        "012350 012"
    );
    assert_eq!(
        render("%{sec}t %{end:sec}t", &r),
        format!("{T0} {}", T0 + 1)
    );
    assert_eq!(render("%{msec}t", &r), format!("{T0}000"));
    assert_eq!(render("%{usec}t", &r), format!("{T0}000005"));
    assert_eq!(render("%{end:msec}t", &r), format!("{}012", T0 + 1));
    r.start = UNIX_EPOCH + Duration::new(T0, 999_999_999);
    assert_eq!(render("%{usec_frac}t.%{msec_frac}t", &r), "999999.999");
    // strftime formats, begin: and end:, and the per-second cache following
    // the record's second.
    let f = LogFormat::compile("%{%Y-%m-%d %H:%M:%S}t|%{end:%Y-%m-%d %H:%M:%S}t|%{%%}t").unwrap();
    for k in 0..3u64 {
        r.start = UNIX_EPOCH + Duration::new(T0 + k * 3601, 0);
        let mut out = Vec::new();
        f.render(&r, &mut out);
        let want = format!(
            "{}|{}|%\n",
            ymdhms(T0 + k * 3601),
            ymdhms(T0 + k * 3601 + 1)
        );
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }
    // Not a special token: passed to strftime verbatim.
    assert_eq!(render("%{msecs}t", &r), "msecs");
}

/// Each thread keeps its own cache per time item, and only a bounded number of them: more
/// live formats than that, rendered in turn from several threads within one second and then
/// the next, still give each format's own text for the record's second.
#[test]
fn time_caches_per_thread_and_item() {
    let formats: Vec<(LogFormat, String)> = (0..80)
        .map(|i| {
            let fmt = format!("{i}:%{{%H:%M:%S}}t");
            (LogFormat::compile(&fmt).unwrap(), format!("{i}:"))
        })
        .collect();
    let formats = &formats;
    std::thread::scope(|s| {
        for t in 0..3u64 {
            s.spawn(move || {
                let mut r = rec();
                for k in 0..4u64 {
                    let sec = T0 + k * 61 + t;
                    r.start = UNIX_EPOCH + Duration::new(sec, 0);
                    let hms = &ymdhms(sec)[11..];
                    for (f, prefix) in formats.iter().chain(formats.iter().rev()) {
                        let mut out = Vec::new();
                        f.render(&r, &mut out);
                        assert_eq!(String::from_utf8(out).unwrap(), format!("{prefix}{hms}\n"));
                    }
                }
            });
        }
    });
}

#[test]
fn body_bytes_and_durations() {
    let mut r = rec();
    r.body = 0;
    assert_eq!(render("%b %B", &r), "- 0");
    r.body = 12345;
    assert_eq!(render("%b %B", &r), "12345 12345");
    r.dur = Duration::from_micros(2_345_678);
    assert_eq!(
        render("%D %T %{ms}T %{us}T %{s}T %{MS}T %{min}T", &r),
        "2345678 2 2345 2345678 2 2345 min"
    );
    r.dur = Duration::from_micros(999);
    assert_eq!(render("%D %T %{ms}T", &r), "999 0 0");
}

#[test]
fn null_vs_empty() {
    let mut r = rec();
    r.env.push(("EMPTY", Vec::new()));
    r.req_h.push(("X-Empty", Vec::new()));
    assert_eq!(
        render("[%{EMPTY}e][%{NOPE}e][%{X-Empty}i][%{X-Nope}i]", &r),
        "[][-][][-]"
    );
    r.ssl.push(("SSL_EMPTY", Vec::new()));
    assert_eq!(render("[%{SSL_EMPTY}x][%{SSL_NOPE}x]", &r), "[-][-]");
    r.handler = None;
    r.status = None;
    assert_eq!(render("%R %s %>s", &r), "- - -");
    assert_eq!(render("%q", &r), "");
    r.query = Some(Vec::new());
    assert_eq!(render("%q", &r), "?");
    r.query = Some(b"a=1&b=\"x\"".to_vec());
    assert_eq!(render("%U%q", &r), "/service1/index.html?a=1&b=\\\"x\\\"");
}

#[test]
fn escaping() {
    let mut r = rec();
    r.line = b"GET /a\"b\\c\n\t\r\x01\x7f\xc3\xa9 HTTP/1.1".to_vec();
    assert_eq!(
        render("%r", &r),
        "GET /a\\\"b\\\\c\\n\\t\\r\\x01\\x7f\\xc3\\xa9 HTTP/1.1"
    );
    r.req_h.push(("Referer", b"x\x08\x0by".to_vec()));
    assert_eq!(render("%{referer}i", &r), "x\\b\\vy");
    r.env.push(("E", b"\"q\"".to_vec()));
    assert_eq!(render("%{E}e", &r), "\\\"q\\\"");
    // %x is not escaped (httpd).
    r.ssl.push(("SSL_CLIENT_S_DN", b"CN=\"a\"".to_vec()));
    assert_eq!(
        render("%{SSL_CLIENT_S_DN}x %{subjectdn}c", &r),
        "CN=\"a\" CN=\"a\""
    );
    // Format-string escapes.
    assert_eq!(
        render("a\\tb\\nc\\rd\\\\e\\\"f\\xg\\", &r),
        "a\tb\nc\rd\\e\"f\\xg\\"
    );
    assert_eq!(render("100%%", &r), "100%");
}

#[test]
fn status_conditions() {
    let mut r = rec();
    r.req_h.push(("Referer", b"http://r/".to_vec()));
    let f = "%400,501{User-agent}i|%!200,304{Referer}i|%<200>s|%!s";
    assert_eq!(render(f, &r), "-|-|200|200");
    r.status = Some(501);
    assert_eq!(render(f, &r), "curl/7.35.0|http://r/|-|501");
    r.status = Some(304);
    assert_eq!(render(f, &r), "-|-|-|304");
    r.status = None;
    assert_eq!(render(f, &r), "-|http://r/|-|-");
}

#[test]
fn misc_items() {
    let mut r = rec();
    r.remote = "[2001:db8::1]:40000".parse().unwrap();
    r.local = SocketAddr::new(
        IpAddr::V6(Ipv4Addr::new(10, 0, 0, 7).to_ipv6_mapped()),
        8443,
    );
    r.ka = 3;
    r.conn = b'X';
    r.handler = Some(b"balancer-manager".to_vec());
    assert_eq!(
        render(
            "%a %{c}a %h %A %p %{canonical}p %{local}p %{remote}p %{bogus}p",
            &r
        ),
        "2001:db8::1 2001:db8::1 2001:db8::1 10.0.0.7 8443 8443 8443 40000 bogus"
    );
    assert_eq!(
        render(
            "%k %X %I %O %S %m %U %H %v %V %R %l %u %{x}n %f %{c}L %L",
            &r
        ),
        "3 X 538 1402 1940 GET /service1/index.html HTTP/1.1 localhost localhost balancer-manager - - - - - awYs9Ett7ic8puQn8-dF7AAAAAM"
    );
    assert_eq!(render("%{Content-type}o %{X-None}o", &r), "text/html -");
    assert_eq!(
        render("%P %{pid}P", &r),
        format!("{0} {0}", std::process::id())
    );
    let tid = render("%{tid}P %{hextid}P %{zz}P", &r);
    let parts: Vec<&str> = tid.split(' ').collect();
    let t: u64 = parts[0].parse().unwrap();
    assert_eq!(u64::from_str_radix(parts[1], 16).unwrap(), t);
    assert_eq!(parts[2], "zz");
    r.req_h
        .push(("Cookie", b" a=1; SESS = x y ;b=;=c; sess2=z".to_vec()));
    assert_eq!(
        render("%{sess}C|%{a}C|%{b}C|%{nope}C|%{SESS2}C", &r),
        "x y|1|-|-|z"
    );
    r.local = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 80);
    assert_eq!(render("%A", &r), "::1");
    assert_eq!(render("%^FB %{X}^ti", &r), "- -");
}

#[test]
fn unknown_directives_error() {
    let known = "aAbBcCDefhHiklLmnoopPqrRsStTuUvVXIOx";
    for c in ('a'..='z').chain('A'..='Z') {
        let r = LogFormat::compile(&format!("x %{c} y"));
        if known.contains(c) {
            assert!(r.is_ok(), "%{c} should compile");
        } else {
            assert_eq!(
                r.unwrap_err(),
                format!("Unrecognized LogFormat directive %{c}")
            );
        }
    }
    assert_eq!(
        LogFormat::compile("%{foo}Z").unwrap_err(),
        "Unrecognized LogFormat directive %Z"
    );
    assert_eq!(
        LogFormat::compile("%>é").unwrap_err(),
        "Unrecognized LogFormat directive %é"
    );
    assert_eq!(
        LogFormat::compile("%^zz").unwrap_err(),
        "Unrecognized LogFormat directive %^zz"
    );
    for bad in ["abc %", "%{foo", "%400", "%>"] {
        assert_eq!(
            LogFormat::compile(bad).unwrap_err(),
            "Ran off end of LogFormat parsing args to some directive",
            "{bad}"
        );
    }
    assert!(LogFormat::compile(EXTENDED).is_ok());
    assert_eq!(LogFormat::compile(COMMON).unwrap().source, COMMON);
}

#[test]
fn render_does_not_allocate() {
    let mut r = rec();
    r.req_h.push(("Referer", b"http://x/\"q\"\x80".to_vec()));
    r.remote = "[2001:db8::1]:40000".parse().unwrap();
    let f = LogFormat::compile(&format!(
        "{EXTENDED} {COMBINED} %t %{{end:%d/%b/%Y %T}}t %{{msec}}t %{{tid}}P %{{SESS}}C %q %{{ms}}T"
    ))
    .unwrap();
    let mut out = Vec::new();
    f.render(&r, &mut out); // warms buffer and time caches
    let line_len = out.len();
    let cap = out.capacity();
    let before = allocs();
    for _ in 0..10_000 {
        out.clear();
        f.render(&r, &mut out);
    }
    assert_eq!(allocs() - before, 0, "render allocated");
    assert_eq!(out.capacity(), cap);
    assert_eq!(out.len(), line_len);
}

#[test]
fn unique_ids() {
    let mut a = UniqueIdGen::new(0);
    let mut b = UniqueIdGen::new(1);
    let mut seen = HashSet::with_capacity(200_000);
    let mut id = [0u8; UNIQUE_ID_LEN];
    for i in 0..100_000u64 {
        for g in [&mut a, &mut b] {
            g.next(i / 10, &mut id);
            assert!(
                id.iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
            );
            assert!(
                seen.insert(id),
                "duplicate {}",
                String::from_utf8_lossy(&id)
            );
        }
    }

    // Layout: stamp ‖ root ‖ counter ‖ conn id.
    let root = *b"0123456789";
    let mut g = UniqueIdGen::with_root(root, 0xfffe);
    let t = UNIX_EPOCH + Duration::new(T0, 123);
    g.next_at(t, 0x1_0000_0007, &mut id);
    let raw = decode_unique_id(&id, false).unwrap();
    assert_eq!(&raw[0..4], &(T0 as u32).to_be_bytes());
    assert_eq!(&raw[4..14], &root);
    assert_eq!(&raw[14..16], &[0xff, 0xfe]);
    assert_eq!(&raw[16..20], &[0, 0, 0, 7]);
    g.next_at(t, 7, &mut id);
    assert_eq!(
        &decode_unique_id(&id, false).unwrap()[14..16],
        &[0xff, 0xff]
    );
    g.next_at(t, 7, &mut id);
    assert_eq!(&decode_unique_id(&id, false).unwrap()[14..16], &[0, 0]);

    // The lab id from httpd 2.4.71 decodes and re-encodes identically.
    let lab = b"awYs9Ett7ic8puQn8-dF7AAAAAM";
    let raw = decode_unique_id(lab, false).unwrap();
    let mut g = UniqueIdGen::with_root(
        raw[4..14].try_into().unwrap(),
        u16::from_be_bytes([raw[14], raw[15]]),
    );
    let stamp = u32::from_be_bytes(raw[0..4].try_into().unwrap());
    let conn = u32::from_be_bytes(raw[16..20].try_into().unwrap());
    g.next_at(
        UNIX_EPOCH + Duration::from_secs(stamp.into()),
        conn.into(),
        &mut id,
    );
    assert_eq!(&id, lab);

    // Legacy alphabet uses '@' and '-'.
    let mut g = UniqueIdGen::with_root([0xff; 10], 0xffff).legacy_alphabet();
    g.next_at(t, 0xffff_ffff, &mut id);
    assert!(id.contains(&b'-') && !id.contains(&b'_'));
    assert_eq!(&decode_unique_id(&id, true).unwrap()[4..], &[0xff; 16]);
    let mut g = UniqueIdGen::with_root([0xfb; 10], 0).legacy_alphabet();
    g.next_at(t, 0, &mut id);
    assert!(id.contains(&b'@'));
    assert_eq!(&decode_unique_id(&id, true).unwrap()[4..14], &[0xfb; 10]);
    assert_eq!(decode_unique_id(&id, false), None);
}

#[test]
fn shareable_across_shards() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LogFormat>();
    assert_send_sync::<UniqueIdGen>();
    // Shards rendering the same format concurrently (time cache contended).
    let f = std::sync::Arc::new(LogFormat::compile(EXTENDED).unwrap());
    let want = render(EXTENDED, &rec());
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let f = f.clone();
            let want = want.clone();
            std::thread::spawn(move || {
                let r = rec();
                let mut out = Vec::new();
                for _ in 0..2000 {
                    out.clear();
                    f.render(&r, &mut out);
                    assert_eq!(&out[..out.len() - 1], want.as_bytes());
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}

#[test]
#[ignore]
fn bench_extended() {
    let r = rec();
    for fmt in [
        "x",
        "%%",
        "%h",
        "%b",
        EXTENDED,
        COMMON,
        "%{%Y-%m-%d %H:%M:%S}t",
        "%{usec_frac}t",
        "%{A}e %{B}e %{C}e %{D}e %{E}e",
        "%r",
    ] {
        let f = LogFormat::compile(fmt).unwrap();
        let mut out = Vec::with_capacity(512);
        let t = std::time::Instant::now();
        for _ in 0..1_000_000 {
            out.clear();
            f.render(&r, &mut out);
        }
        eprintln!("{fmt}: {:?}/line", t.elapsed() / 1_000_000);
    }
}

/// A request's wall-clock start comes from its monotonic instant through a per-thread anchor:
/// right on either side of the anchor, and across its renewal.
#[test]
fn wall_clock_at_follows_the_monotonic_clock_on_both_sides_of_its_anchor() {
    use std::time::{Duration, Instant, SystemTime};
    let (t, w) = (Instant::now(), SystemTime::now());
    let ms = Duration::from_millis;
    let near = |got: SystemTime, want: SystemTime| {
        let off = got.duration_since(want).unwrap_or_else(|e| e.duration());
        assert!(off < ms(50), "{got:?} is {off:?} from {want:?}");
    };
    near(wall_clock_at(t), w);
    near(wall_clock_at(t + ms(300)), w + ms(300));
    near(wall_clock_at(t - ms(200)), w - ms(200));
    // Past the anchor's life: a new anchor, and instants before it still map right.
    near(wall_clock_at(t + ms(1500)), w + ms(1500));
    near(wall_clock_at(t), w);
}
