//! The tutorial's path end to end: rewrite to a balancer, byrequests alternation on one
//! keep-alive client connection, the access log naming each route, and the header rewriting
//! mod_proxy_http does on the way.

mod common;
use common::*;

fn seed_like(a: u16, b: u16) -> String {
    format!(
        "LoadModule proxy_balancer_module modules/mod_proxy_balancer.so\n\
         LoadModule lbmethod_byrequests_module modules/mod_lbmethod_byrequests.so\n\
         LoadModule slotmem_shm_module modules/mod_slotmem_shm.so\n\
         RewriteRule ^/service1/(.*) balancer://backend/service1/$1 [proxy,last]\n\
         ProxyPassReverse / balancer://backend/\n\
         <Proxy balancer://backend>\n\
           BalancerMember http://127.0.0.1:{a} route=backend-port-{a}\n\
           BalancerMember http://127.0.0.1:{b} route=backend-port-{b}\n\
           Require all granted\n\
           Options None\n\
           ProxySet enablereuse=on\n\
         </Proxy>\n"
    )
}

#[test]
fn tutorial_requests_alternate_and_log_routes() {
    let (o1, o2) = (port_origin(), port_origin());
    let p = start_proxy("tutorial", &seed_like(o1.port, o2.port), 2);
    let mut c = Client::connect(p.port);
    let r1 = c.get("/service1/index.html", "User-Agent: curl/7.35.0\r\n");
    let r2 = c.get("/service1/index.html", "User-Agent: curl/7.35.0\r\n");
    assert_eq!(r1.status, 200);
    assert_eq!(r1.text(), format!("Server response, port {}\n", o1.port));
    assert_eq!(r2.text(), format!("Server response, port {}\n", o2.port));
    let lines = p.access_lines(2);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let route1 = format!(" proxy-server backend-port-{} + ", o1.port);
    let route2 = format!(" proxy-server backend-port-{} + ", o2.port);
    assert!(lines[0].contains(&route1), "{}", lines[0]);
    assert!(lines[1].contains(&route2), "{}", lines[1]);
    assert!(lines[0].starts_with("127.0.0.1 - - ["), "{}", lines[0]);
    let len = r1.body.len();
    let shape = format!(
        "\"GET /service1/index.html HTTP/1.1\" 200 {len} \"-\" \"curl/7.35.0\" localhost 127.0.0.1 "
    );
    assert!(lines[0].contains(&shape), "{}", lines[0]);
    // The member saw the rewritten path.
    assert!(o1.requests.lock().unwrap()[0].starts_with("GET /service1/index.html HTTP/1.1\r\n"));
}

#[test]
fn forwarded_headers_and_hop_by_hop_stripping() {
    let o = http_origin(|head, _| ok(&String::from_utf8_lossy(head)));
    let conf = format!("ProxyPass /app http://127.0.0.1:{}/base\n", o.port);
    let p = start_proxy("headers", &conf, 1);
    let mut c = Client::connect(p.port);
    let r = c.get(
        "/app/x?q=1",
        "X-Forwarded-For: 10.0.0.1\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Connection: x\r\nX-Keep: yes\r\n",
    );
    let seen = r.text();
    assert!(seen.starts_with("GET /base/x?q=1 HTTP/1.1\r\n"), "{seen}");
    assert!(
        seen.contains(&format!("Host: 127.0.0.1:{}\r\n", o.port)),
        "{seen}"
    );
    assert!(
        seen.contains("X-Forwarded-For: 10.0.0.1, 127.0.0.1\r\n"),
        "{seen}"
    );
    assert!(seen.contains("X-Forwarded-Host: localhost\r\n"), "{seen}");
    assert!(seen.contains("X-Forwarded-Server: localhost\r\n"), "{seen}");
    assert!(seen.contains("X-Keep: yes\r\n"), "{seen}");
    for gone in [
        "X-Secret",
        "Keep-Alive:",
        "TE:",
        "Proxy-Connection",
        "keep-alive, X-Secret",
    ] {
        assert!(!seen.contains(gone), "{gone} leaked: {seen}");
    }
    assert!(seen.ends_with("Connection: Keep-Alive\r\n\r\n"), "{seen}");
}

#[test]
fn preserve_host_and_proxy_pass_reverse() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU16, Ordering};
    let port = Arc::new(AtomicU16::new(0));
    let p2 = port.clone();
    let o = http_origin(move |head, _| {
        let h = String::from_utf8_lossy(head).into_owned();
        let host = h
            .split("Host: ")
            .nth(1)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string();
        let member = format!("http://127.0.0.1:{}", p2.load(Ordering::Relaxed));
        format!(
            "HTTP/1.1 302 Found\r\nLocation: {member}/service1/next\r\nContent-Location: /rel\r\nX-Host: {host}\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    });
    port.store(o.port, Ordering::Relaxed);
    let conf = format!(
        "{}RewriteRule ^/service1/(.*) balancer://b/service1/$1 [P,L]\nProxyPassReverse / balancer://b/\nProxyPreserveHost On\n",
        balancer_conf("b", &[o.port], &[], "")
    );
    let p = start_proxy("reverse", &conf, 1);
    let mut c = Client::connect(p.port);
    let r = c.get("/service1/a", "");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("X-Host").as_deref(), Some("localhost"));
    assert_eq!(
        r.header("Location").as_deref(),
        Some("http://localhost/service1/next"),
        "{}",
        r.head
    );
    assert_eq!(
        r.header("Content-Location").as_deref(),
        Some("/rel"),
        "{}",
        r.head
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let o = http_origin(|head, _| {
        let h = String::from_utf8_lossy(head);
        ok(h.split(' ').nth(1).unwrap())
    });
    let p = proxy_pass("pipeline", o.port, "", "");
    let mut c = Client::connect(p.port);
    c.send(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\nGET /three HTTP/1.1\r\nHost: a\r\n\r\n");
    for want in ["/one", "/two", "/three"] {
        assert_eq!(c.read_response(false).unwrap().text(), want);
    }
}

#[test]
fn http10_client_gets_close_and_bodiless_statuses_have_no_body() {
    let o = http_origin(|head, _| {
        let h = String::from_utf8_lossy(head);
        match h.split(' ').nth(1).unwrap() {
            "/204" => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            "/304" => b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n".to_vec(),
            _ => ok("hello"),
        }
    });
    let p = proxy_pass("http10", o.port, "", "");
    let out = raw_exchange(p.port, b"GET /x HTTP/1.0\r\n\r\n");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Connection: close\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nhello"), "{text}");
    let mut c = Client::connect(p.port);
    assert_eq!(c.get("/204", "").status, 204);
    let r = c.get("/304", "");
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    c.send(b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n");
    let h = c.read_response(true).unwrap();
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    // Still in sync after the bodiless responses.
    assert_eq!(c.get("/x", "").text(), "hello");
}

#[test]
fn access_log_items_name_balancer_member_route_and_response() {
    let o = http_origin(|_, _| {
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Answer: 42\r\n\r\nhello".to_vec()
    });
    let fmt = r#"LogFormat "%>s %s %b %B [%{BALANCER_NAME}e] [%{BALANCER_WORKER_NAME}e] [%{BALANCER_WORKER_ROUTE}e] %{X-Answer}o %{User-Agent}i %R %X %I %O %{UNIQUE_ID}e %{ms}T %m %U %q %H" items"#;
    let conf = format!(
        "LoadModule unique_id_module m\n{fmt}\nCustomLog {{DIR}}/items.log items\n{}ProxyPass / balancer://lg/\n",
        balancer_conf("lg", &[o.port], &[], "")
    );
    let dir = temp_dir("items-conf");
    let p = start_proxy(
        "items",
        &conf.replace("{DIR}", &dir.display().to_string()),
        1,
    );
    let mut c = Client::connect(p.port);
    assert_eq!(c.get("/p?q=1", "User-Agent: ua\r\n").text(), "hello");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut line = String::new();
    while line.is_empty() && std::time::Instant::now() < until {
        line = std::fs::read_to_string(dir.join("items.log")).unwrap_or_default();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let f: Vec<&str> = line.trim_end().split(' ').collect();
    assert_eq!(f.len(), 19, "{line}");
    assert_eq!(&f[..4], ["200", "200", "5", "5"], "{line}");
    assert_eq!(f[4], "[balancer://lg]");
    assert_eq!(f[5], format!("[http://127.0.0.1:{}]", o.port));
    assert_eq!(f[6], format!("[r{}]", o.port));
    assert_eq!(&f[7..10], ["42", "ua", "proxy-server"]);
    assert_eq!(f[10], "+");
    assert!(
        f[11].parse::<u64>().unwrap() > 20 && f[12].parse::<u64>().unwrap() > 40,
        "{line}"
    );
    assert_eq!(f[13].len(), 27, "UNIQUE_ID: {line}");
    f[14].parse::<u64>().unwrap();
    assert_eq!(&f[15..], ["GET", "/p", "?q=1", "HTTP/1.1"]);
}
