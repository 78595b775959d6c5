//! Loading whole configurations: the seed, each feature, and each error's file:line and text.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::model::*;
use super::{ConfError, load, load_str};

const MODS: &str = "LoadModule proxy_balancer_module m.so\nLoadModule lbmethod_byrequests_module m.so\nLoadModule slotmem_shm_module m.so\n";

fn path() -> PathBuf {
    PathBuf::from("/etc/ringproxy/test.conf")
}

/// Loads `Listen 8080` + the balancer modules + `body` (so `body` starts on line 5).
fn ok(body: &str) -> Config {
    let text = format!("Listen 8080\n{MODS}{body}");
    match load_str(&text, &path()) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn err(body: &str) -> ConfError {
    let text = format!("Listen 8080\n{MODS}{body}");
    match load_str(&text, &path()) {
        Ok(_) => panic!("expected an error for:\n{body}"),
        Err(e) => e,
    }
}

/// Asserts the error is on `line` and its message contains `text`.
fn assert_err(e: &ConfError, line: usize, text: &str) {
    assert_eq!(e.line, line, "wrong line in: {e}");
    assert!(e.message.contains(text), "expected {text:?} in: {e}");
}

/// A fresh directory under the system temp dir.
fn tempdir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "ringproxy-conf-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const BACKEND: &str =
    "<Proxy balancer://backend>\nBalancerMember http://127.0.0.1:8000\n</Proxy>\n";

#[test]
fn seed_conf_loads_into_the_expected_model() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/seed.conf");
    let c = load(&p).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        c.warnings.is_empty(),
        "seed must load without warnings: {:?}",
        c.warnings
    );
    assert_eq!(c.listeners, vec!["127.0.0.1:8080".parse().unwrap()]);
    assert!(c.rewrite_engine, "ringproxy defaults RewriteEngine to On");
    assert_eq!(c.balancers.len(), 1);
    let b = &c.balancers[0];
    assert_eq!(b.name, "balancer://backend");
    assert!(!b.implicit && !b.denied);
    assert_eq!(b.lbmethod, LbMethodKind::ByRequests);
    assert_eq!(b.max_attempts, None);
    assert_eq!(b.members.len(), 2);
    for (m, port) in b.members.iter().zip([8000u16, 8001]) {
        assert_eq!(m.url, format!("http://localhost:{port}"));
        assert_eq!(m.host, "localhost");
        assert_eq!(m.port, port);
        assert_eq!(m.path, "");
        assert_eq!(m.route, format!("backend-port-{port}"));
        assert_eq!(m.lbfactor, 100);
        assert!(m.enable_reuse);
        assert_eq!(m.status, 0);
        assert_eq!(m.retry, Duration::from_secs(60));
        assert!(
            !m.addrs.is_empty()
                && m.addrs
                    .iter()
                    .all(|a| a.port() == port && a.ip().is_loopback())
        );
    }
    assert_eq!(c.rewrite_rules.len(), 1);
    let r = &c.rewrite_rules[0];
    assert!(r.pattern.is_match("/service1/x") && !r.pattern.is_match("/other"));
    assert_eq!(
        r.substitution.as_deref(),
        Some(
            &[
                Template::Lit("balancer://backend/service1/".into()),
                Template::RuleRef(1)
            ][..]
        )
    );
    assert!(r.flags.proxy && r.flags.last && !r.flags.nocase && r.flags.redirect.is_none());
    assert!(r.conds.is_empty());
    assert!(r.at.ends_with("seed.conf:6"), "{}", r.at);
    assert_eq!(c.proxy_pass_reverse.len(), 1);
    assert_eq!(c.proxy_pass_reverse[0].path, "/");
    assert!(
        matches!(&c.proxy_pass_reverse[0].target, ReverseTarget::Balancer { balancer: 0, path } if path.is_empty())
    );
    assert!(c.modules.iter().any(|m| m == "proxy_balancer_module"));
    assert!(c.modules.iter().any(|m| m == "rewrite_module"));
    assert_eq!(c.server_name, "localhost");
    assert_eq!(c.timeout, Duration::from_secs(60));
}

#[test]
fn display_has_httpds_shape() {
    let e = err("FooBar x\n");
    assert_eq!(
        e.to_string(),
        "Syntax error on line 5 of /etc/ringproxy/test.conf:\nFooBar: Invalid command 'FooBar', perhaps misspelled or defined by a module not included in the server configuration"
    );
}

#[test]
fn continuation_quoting_comments() {
    let c = ok(concat!(
        "# a comment with an Unknown directive\n",
        "   # indented comment\n",
        "ProxyPass /a \\\n",
        "    balancer://backend/x \\\n",
        "    lbmethod=byrequests\n",
        "LogFormat \"%h \\\"%r\\\" %>s\" quoted\n",
        "CustomLog 'logs/a b.log' quoted\n",
        "ServerName proxy.example#notacomment\n",
        "<Proxy balancer://backend>\nBalancerMember http://127.0.0.1:8000\n</Proxy>\n",
    ));
    assert_eq!(c.proxy_pass.len(), 1);
    assert_eq!(c.server_name, "proxy.example#notacomment");
    assert_eq!(c.access_logs.len(), 1);
    assert_eq!(
        c.access_logs[0].path,
        PathBuf::from("/etc/ringproxy/logs/a b.log")
    );
    assert_eq!(c.access_logs[0].format.source, "%h \"%r\" %>s");
    // An error after a continued line is reported on the physical line of the bad word.
    let e = err("BalancerMember balancer://b \\\n  http://127.0.0.1:1 \\\n  bogus=1\n");
    assert_err(&e, 7, "unknown Worker parameter 'bogus=1'");
}

#[test]
fn variables_from_define_and_environment() {
    let c =
        ok("Define HOST 127.0.0.1\nDefine PORT 9001\nListen ${HOST}:${PORT}\nServerName ${NOPE}\n");
    assert!(c.listeners.contains(&"127.0.0.1:9001".parse().unwrap()));
    assert_eq!(c.server_name, "${NOPE}");
    assert_eq!(c.warnings.len(), 1);
    assert!(
        c.warnings[0].contains("test.conf:8") && c.warnings[0].contains("${NOPE}"),
        "{:?}",
        c.warnings
    );
    // An environment variable (any one this process has with a plain value; no set_var, which
    // would race with the other tests reading the environment).
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-./".contains(&b))
    };
    if let Some((name, value)) =
        std::env::vars().find(|(n, v)| plain(n) && !n.contains(['-', '.', '/']) && plain(v))
    {
        let c = ok(&format!("ServerName ${{{name}}}\n"));
        assert_eq!(c.server_name, value);
        // Define wins over the environment.
        let c = ok(&format!(
            "Define {name} defined.example\nServerName ${{{name}}}\n"
        ));
        assert_eq!(c.server_name, "defined.example");
    }
}

#[test]
fn ifmodule_and_ifdefine() {
    let c = ok(concat!(
        "<IfModule headers_module>\nThisIsNotADirective at all\nHeader set X y\n</IfModule>\n",
        "<IfModule !mod_headers.c>\nServerName a.example\n</IfModule>\n",
        "<IfModule mod_rewrite.c>\n<IfModule rewrite_module>\nRewriteEngine Off\n</IfModule>\n</IfModule>\n",
        "<IfDefine FAST>\nBogus\n</IfDefine>\nDefine FAST\n<IfDefine FAST>\nThreads 3\n</IfDefine>\n",
        "<IfDefine !FAST>\nBogus\n</IfDefine>\n",
    ));
    assert_eq!(c.server_name, "a.example");
    assert!(!c.rewrite_engine);
    assert_eq!(c.threads, Some(3));
    // Once the module is loaded, the section content is interpreted.
    let e = err(
        "LoadModule headers_module m.so\n<IfModule headers_module>\nThisIsNotADirective\n</IfModule>\n",
    );
    assert_err(&e, 7, "Invalid command 'ThisIsNotADirective'");
}

#[test]
fn include_wildcards_sorted_and_no_match_is_an_error() {
    let dir = tempdir("include");
    std::fs::create_dir_all(dir.join("conf.d/sub")).unwrap();
    std::fs::write(dir.join("conf.d/20-b.conf"), "ServerName b.example\n").unwrap();
    std::fs::write(
        dir.join("conf.d/10-a.conf"),
        "ServerName a.example\nListen 8081\n",
    )
    .unwrap();
    std::fs::write(dir.join("conf.d/notes.txt"), "Bogus\n").unwrap();
    std::fs::write(dir.join("conf.d/sub/x.conf"), "Threads 2\n").unwrap();
    std::fs::write(dir.join("bad.conf"), "\n\nTimeout abc\n").unwrap();
    let main = dir.join("main.conf");
    let c = load_str(
        "Listen 8080\nInclude conf.d/*.conf\nInclude conf.d/sub\n",
        &main,
    )
    .unwrap();
    assert_eq!(c.server_name, "b.example", "20-b must be read after 10-a");
    assert_eq!(c.listeners.len(), 2);
    assert_eq!(c.threads, Some(2));
    let e = load_str("Listen 8080\nInclude conf.d/*.cfg\n", &main).unwrap_err();
    assert_eq!((e.file.clone(), e.line), (main.clone(), 2));
    assert!(
        e.message.starts_with("No matches for the wildcard '*.cfg'"),
        "{e}"
    );
    assert!(
        load_str(
            "Listen 8080\nIncludeOptional conf.d/*.cfg\nIncludeOptional nope.conf\n",
            &main
        )
        .is_ok()
    );
    let e = load_str("Listen 8080\nInclude nope.conf\n", &main).unwrap_err();
    assert!(
        e.message.contains("Could not open configuration file"),
        "{e}"
    );
    // An error inside an included file names that file and its line.
    let e = load_str("Listen 8080\nInclude bad.conf\n", &main).unwrap_err();
    assert_eq!((e.file.clone(), e.line), (dir.join("bad.conf"), 3));
    // ServerRoot changes the base of relative includes.
    let root = dir.to_string_lossy();
    let c = load_str(
        &format!("ServerRoot {root}\nListen 8080\nInclude conf.d/sub/x.conf\n"),
        Path::new("/elsewhere/m.conf"),
    )
    .unwrap();
    assert_eq!(c.threads, Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn names_are_case_insensitive() {
    let c = ok(concat!(
        "<proxy BALANCER://Mixed LbMethod=ByRequests>\n",
        "  balancermember HTTP://LocalHost:8000/ LOADFACTOR=2 EnableReuse=OFF\n",
        "</PROXY>\n",
        "proxypass /m balancer://MIXED/\n",
        "keepalive off\n",
    ));
    let b = &c.balancers[0];
    assert_eq!(b.name, "balancer://mixed");
    assert_eq!(b.members[0].url, "http://localhost:8000");
    assert_eq!(b.members[0].lbfactor, 200);
    assert!(!b.members[0].enable_reuse);
    assert!(!c.keep_alive);
    assert!(matches!(
        c.proxy_pass[0].target,
        PassTarget::Balancer { balancer: 0, .. }
    ));
}

#[test]
fn unknown_directive_and_module_not_loaded() {
    assert_err(
        &err("ServerName x\nFooBar 1\n"),
        6,
        "Invalid command 'FooBar'",
    );
    assert_err(
        &err("Header set X-A b\n"),
        5,
        "Invalid command 'Header', perhaps misspelled",
    );
    assert_err(
        &err("LoadModule headers_module m.so\nHeader set X-A b\n"),
        6,
        "Header is not supported by ringproxy yet",
    );
    let e = err("LoadModule php_module m.so\n");
    assert_err(&e, 5, "module php_module is not part of ringproxy");
    // balancer:// needs the balancer modules.
    let e = load_str(
        "Listen 80\nProxyPass / balancer://x/\n<Proxy balancer://x>\nBalancerMember http://127.0.0.1:1\n</Proxy>\n",
        &path(),
    )
    .unwrap_err();
    assert_err(&e, 2, "needs LoadModule proxy_balancer_module");
    // ...and the default lbmethod its module.
    let e = load_str(
        "Listen 80\nLoadModule proxy_balancer_module m\nLoadModule slotmem_shm_module m\n<Proxy balancer://x>\nBalancerMember http://127.0.0.1:1\n</Proxy>\n",
        &path(),
    )
    .unwrap_err();
    assert_err(&e, 4, "lbmethod_byrequests_module");
    let e = err(
        "<Proxy balancer://x lbmethod=bytraffic>\nBalancerMember http://127.0.0.1:1\n</Proxy>\n",
    );
    assert_err(&e, 5, "LoadModule lbmethod_bytraffic_module is missing");
}

#[test]
fn worker_parameter_errors() {
    let e =
        err("<Proxy balancer://x>\n BalancerMember http://127.0.0.1:1 loadfactor=0.5\n</Proxy>\n");
    assert_err(&e, 6, "LoadFactor must be a number between 1..100");
    assert_eq!(e.directive, "BalancerMember");
    assert_err(
        &err("<Proxy balancer://x>\nBalancerMember http://127.0.0.1:1 loadfactor=101\n</Proxy>\n"),
        6,
        "LoadFactor",
    );
    let e = err("<Proxy balancer://x>\nBalancerMember http://127.0.0.1:1 frobnicate=1\n</Proxy>\n");
    assert_err(&e, 6, "unknown Worker parameter 'frobnicate=1'");
    assert!(
        e.to_string()
            .contains("BalancerMember: unknown Worker parameter")
    );
    assert_err(
        &err("ProxyPass / http://127.0.0.1:1/ lbmethod=bytraffic\n"),
        5,
        "unknown Worker parameter",
    );
    assert_err(
        &err("ProxyPass / balancer://backend/ route=x\n"),
        5,
        "unknown Balancer parameter 'route=x'",
    );
    assert_err(
        &err("BalancerMember balancer://x http://127.0.0.1:1 status=Q\n"),
        5,
        "unknown status parameter option",
    );
    assert_err(
        &err("BalancerMember balancer://x http://127.0.0.1:1 timeout=0\n"),
        5,
        "Timeout must be at least one second",
    );
    assert_err(
        &err("BalancerMember balancer://x http://127.0.0.1:1 lbset=100\n"),
        5,
        "LBset",
    );
    assert_err(
        &err("BalancerMember balancer://x https://127.0.0.1:1\n"),
        5,
        "scheme https not supported by ringproxy",
    );
    assert_err(
        &err("BalancerMember balancer://x ajp://127.0.0.1:1\n"),
        5,
        "scheme ajp not supported",
    );
    assert_err(
        &err("BalancerMember balancer://x http://no-such-host.invalid:1\n"),
        5,
        "could not resolve host name",
    );
}

#[test]
fn unknown_lbmethod() {
    let e = err(
        "<Proxy balancer://x>\nBalancerMember http://127.0.0.1:1\nProxySet lbmethod=foo\n</Proxy>\n",
    );
    assert_err(&e, 7, "unknown lbmethod lbmethod=foo; balancer://x");
    assert_eq!(
        e.to_string().lines().nth(1),
        Some("ProxySet: unknown lbmethod lbmethod=foo; balancer://x")
    );
    let e = err("ProxySet balancer://x lbmethod=heartbeat\n");
    assert_err(
        &e,
        5,
        "lbmethod=heartbeat is not supported by this ringproxy yet",
    );
}

#[test]
fn mismatched_close_tag() {
    let e = err("<Proxy balancer://x>\nBalancerMember http://127.0.0.1:1\n</Location>\n");
    assert_err(&e, 7, "Expected </Proxy> but saw </Location>");
    let e = err("<Proxy balancer://x>\n");
    assert_err(&e, 5, "<Proxy> was not closed.");
}

#[test]
fn missing_and_empty_balancers() {
    let e = err("RewriteRule ^/(.*) balancer://nope/$1 [P]\n");
    assert_err(&e, 5, "balancer://nope is not defined");
    let e = err("ProxyPass / balancer://nope/\n");
    assert_err(&e, 5, "balancer://nope is not defined");
    let e = err("<Proxy balancer://empty>\n</Proxy>\n");
    assert_err(&e, 5, "balancer://empty has no BalancerMember");
    // References may come before the definition.
    let c = ok(&format!(
        "RewriteRule ^/(.*) balancer://backend/$1 [P]\nProxyPass /p balancer://backend\n{BACKEND}"
    ));
    assert_eq!(c.rewrite_rules.len(), 1);
    assert!(
        matches!(&c.proxy_pass[0].target, PassTarget::Balancer { balancer: 0, path } if path.is_empty())
    );
    let many: String = (0..65)
        .map(|i| {
            format!(
                "BalancerMember balancer://big http://127.0.0.1:{}\n",
                1000 + i
            )
        })
        .collect();
    assert_err(&err(&many), 69, "more than 64 members");
}

#[test]
fn rewrite_flags_and_errors() {
    assert_err(
        &err(&format!("{BACKEND}RewriteRule ^/a /b [L,XYZ]\n")),
        8,
        "unknown flag 'XYZ'",
    );
    assert_err(
        &err("RewriteRule ^/a /b [E=FOO:1]\n"),
        5,
        "RewriteRule flag E=FOO:1 is not supported by ringproxy",
    );
    assert_err(
        &err("RewriteRule ^/a /b [PT]\n"),
        5,
        "flag PT is not supported",
    );
    assert_err(
        &err("RewriteRule ^/a https://h/b [P]\n"),
        5,
        "TLS to backends",
    );
    assert_err(
        &err("RewriteRule ^/(.*) $1 [P]\n"),
        5,
        "must start with balancer:// or http://",
    );
    assert_err(&err("RewriteRule ^/a /b?${map:x} [L]\n"), 5, "RewriteMap");
    assert_err(
        &err("RewriteRule ^/a %{NOPE} [L]\n"),
        5,
        "%{NOPE} is not supported",
    );
    assert_err(
        &err("RewriteRule ^/(a /b\n"),
        5,
        "cannot compile regular expression",
    );
    assert_err(
        &err("RewriteCond %{REQUEST_URI} -f\nRewriteRule ^ - [F]\n"),
        5,
        "no filesystem",
    );
    assert_err(
        &err("RewriteCond %{REQUEST_URI} ^/x [NC,XX]\n"),
        5,
        "unknown flag 'XX'",
    );
    let c = ok(concat!(
        "RewriteEngine on\n",
        "RewriteCond %{HTTP_HOST} ^(www)\\.example$ [NC,OR]\n",
        "RewriteCond %{HTTP:X-Forwarded-Proto} !=https\n",
        "RewriteRule ^/Old/(.*)$ http://%1.example:81/new/$1\\$?q=100\\% [R=permanent,NC,QSA]\n",
        "RewriteRule ^/gone - [G]\n",
        "RewriteRule !^/keep /elsewhere [redirect=seeother,NE,QSD]\n",
        "RewriteCond %{QUERY_STRING} =\"\"\n",
    ));
    assert_eq!(c.rewrite_rules.len(), 3);
    let r = &c.rewrite_rules[0];
    assert!(
        r.pattern.is_match("/old/x"),
        "NC compiles case-insensitively"
    );
    assert!(r.flags.nocase && r.flags.qsa && r.flags.redirect == Some(301) && !r.flags.last);
    assert_eq!(r.conds.len(), 2);
    assert_eq!(
        r.conds[0].test,
        vec![Template::Var(ServerVar::Header("Host".into()))]
    );
    assert!(r.conds[0].or_next && !r.conds[0].negate);
    assert!(matches!(&r.conds[0].pattern, CondPattern::Regex(re) if re.is_match("WWW.example")));
    assert_eq!(
        r.conds[1].test,
        vec![Template::Var(ServerVar::Header("X-Forwarded-Proto".into()))]
    );
    assert!(
        r.conds[1].negate
            && matches!(&r.conds[1].pattern, CondPattern::Equal(s, false) if s == "https")
    );
    assert_eq!(
        r.substitution.as_deref().unwrap(),
        &[
            Template::Lit("http://".into()),
            Template::CondRef(1),
            Template::Lit(".example:81/new/".into()),
            Template::RuleRef(1),
            Template::Lit("$?q=100%".into()),
        ]
    );
    let g = &c.rewrite_rules[1];
    assert!(g.substitution.is_none() && g.flags.gone && g.flags.last && g.conds.is_empty());
    let n = &c.rewrite_rules[2];
    assert!(n.negate && n.flags.redirect == Some(303) && n.flags.noescape && n.flags.qsd);
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].contains("test.conf:11") && c.warnings[0].contains("no RewriteRule follows")
    );
}

#[test]
fn worker_sharing_warning() {
    let c = ok(concat!(
        "<Proxy balancer://x>\n",
        "BalancerMember http://127.0.0.1:8000 route=a\n",
        "BalancerMember http://127.0.0.1:8000/ route=b\n",
        "</Proxy>\n",
        "ProxyPass /a http://127.0.0.1:9000/app/ retry=5\n",
        "ProxyPass /b http://127.0.0.1:9000/app/ retry=7\n",
    ));
    let b = &c.balancers[0];
    assert_eq!(b.members.len(), 1);
    assert_eq!(b.members[0].route, "a");
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(
        c.warnings[0].contains("test.conf:7")
            && c.warnings[0].contains("AH01150: Ignoring parameter 'route=b'")
    );
    assert!(c.warnings[1].contains("test.conf:10") && c.warnings[1].contains("worker sharing"));
    // The two ProxyPass lines share one implicit balancer.
    assert_eq!(c.balancers.len(), 2);
    let imp = &c.balancers[1];
    assert!(imp.implicit);
    assert_eq!(imp.name, "http://127.0.0.1:9000/app/");
    assert_eq!(imp.members[0].path, "/app/");
    assert_eq!(imp.members[0].retry, Duration::from_secs(5));
    assert!(
        c.proxy_pass
            .iter()
            .all(|p| matches!(p.target, PassTarget::Balancer { balancer: 1, .. }))
    );
}

#[test]
fn loadfactor_status_and_proxyset_defaults() {
    let c = ok(concat!(
        "<Proxy balancer://x stickysession=JSESSIONID|jsessionid>\n",
        "ProxySet timeout=7 retry=3 connectiontimeout=250ms\n",
        "BalancerMember http://127.0.0.1:8000 loadfactor=2.5 status=+H\n",
        "BalancerMember http://127.0.0.1:8001 retry=9 status=D-D+S\n",
        "ProxySet lbset=1 ttl=30 max=4 disablereuse=on nofailover=On failonstatus=500,503\n",
        "</Proxy>\n",
    ));
    let b = &c.balancers[0];
    assert_eq!(
        b.sticky,
        Some(StickySpec {
            cookie: "JSESSIONID".into(),
            url_param: "jsessionid".into()
        })
    );
    assert_eq!(
        b.timeout,
        Some(Duration::from_secs(7)),
        "timeout on a balancer is the balancer's"
    );
    assert!(b.nofailover);
    assert_eq!(b.fail_on_status, vec![500, 503]);
    let (m0, m1) = (&b.members[0], &b.members[1]);
    assert_eq!(m0.lbfactor, 250);
    assert_eq!(m0.status, status::HOT_STANDBY);
    assert_eq!(m1.status, status::STOPPED);
    assert_eq!(m0.timeout, None);
    for m in [m0, m1] {
        assert_eq!(m.connection_timeout, Some(Duration::from_millis(250)));
        assert_eq!(m.lbset, 1, "a ProxySet after the members applies too");
        assert_eq!(m.ttl, Some(Duration::from_secs(30)));
        assert_eq!(m.max, Some(4));
        assert!(!m.enable_reuse);
    }
    assert_eq!(m0.retry, Duration::from_secs(3));
    assert_eq!(
        m1.retry,
        Duration::from_secs(9),
        "the member's own parameter wins over ProxySet"
    );
}

#[test]
fn core_directives() {
    let c = ok(concat!(
        "Listen [::1]:8443 http\n",
        "ServerName www.example.com:8080\n",
        "Timeout 30\nKeepAliveTimeout 500ms\nMaxKeepAliveRequests 0\n",
        "LimitRequestLine 4096\nLimitRequestFields 0\nLimitRequestFieldSize 1000\nLimitRequestBody 1048576\n",
        "ErrorLog logs/error.log\nLogLevel info proxy:debug\n",
        "IoBackend epoll\nRequestReadTimeout header=10-40,MinRate=500 body=20\n",
        "ProxyPreserveHost On\nProxyTimeout 9\nProxyAddHeaders off\nProxyRequests Off\nProxyVia Off\n",
        "User daemon\nRequire all granted\n",
        "LogFormat \"%h %>s\"\nTransferLog /var/log/t.log\nCustomLog logs/c.log combined env=!nolog\n",
    ));
    assert!(c.listeners.contains(&"[::1]:8443".parse().unwrap()));
    assert_eq!(c.server_name, "www.example.com");
    assert_eq!(c.timeout, Duration::from_secs(30));
    assert_eq!(c.keep_alive_timeout, Duration::from_millis(500));
    assert_eq!(c.max_keep_alive_requests, 0);
    assert_eq!(c.limits.request_line, 4096);
    assert_eq!(c.limits.header_fields, usize::MAX);
    assert_eq!(c.limits.field_size, 1000);
    assert_eq!(c.limits.body, 1048576);
    assert_eq!(
        c.error_log,
        Some(PathBuf::from("/etc/ringproxy/logs/error.log"))
    );
    assert_eq!(c.log_level, LogLevel::Info);
    assert_eq!(c.io_backend, IoBackendChoice::Epoll);
    assert_eq!(ok("IoBackend ring\n").io_backend, IoBackendChoice::Ring);
    assert_eq!(c.header_read_timeout, Duration::from_secs(10));
    assert!(c.proxy_preserve_host && !c.proxy_add_headers);
    assert_eq!(c.proxy_timeout, Some(Duration::from_secs(9)));
    assert_eq!(c.access_logs.len(), 2);
    assert_eq!(
        c.access_logs[0].format.source, "%h %>s",
        "TransferLog uses the unnamed LogFormat"
    );
    assert!(
        c.access_logs[1]
            .format
            .source
            .ends_with("\"%{Referer}i\" \"%{User-Agent}i\"")
    );
    assert_eq!(
        c.access_logs[1].env_condition,
        Some(("nolog".into(), false))
    );
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("proxy:debug"));
    assert!(c.warnings[1].contains("User"));
}

#[test]
fn core_errors() {
    let e = load_str("ServerName x\n", &path()).unwrap_err();
    assert_eq!((e.line, e.directive.as_str()), (0, "Listen"));
    assert_err(&err("Listen 8080\n"), 5, "Cannot define multiple Listeners");
    assert_err(&err("Listen 127.0.0.1:8080 https\n"), 5, "TLS listeners");
    assert_err(&err("Timeout soon\n"), 5, "not a valid time");
    assert_err(&err("KeepAlive maybe\n"), 5, "must be On or Off");
    assert_err(&err("Timeout 1 2\n"), 5, "takes one argument");
    assert_err(
        &err("Require all denied\n"),
        5,
        "Require all denied outside <Proxy> is not supported",
    );
    assert_err(
        &err("Require ip 10.0.0.0/8\n"),
        5,
        "only 'Require all granted'",
    );
    assert_err(
        &err("<Proxy balancer://x>\nOrder allow,deny\n</Proxy>\n"),
        6,
        "use 'Require all granted'",
    );
    assert_err(
        &err("<Directory />\n</Directory>\n"),
        5,
        "only <Proxy>, <IfModule>, <IfDefine> sections",
    );
    assert_err(
        &err("<VirtualHost *:80>\n</VirtualHost>\n"),
        5,
        "not supported yet",
    );
    assert_err(&err("<Frob x>\n</Frob>\n"), 5, "Invalid command '<Frob'");
    assert_err(&err("ProxyRequests On\n"), 5, "forward proxy");
    assert_err(
        &err("CustomLog \"|/usr/bin/rotatelogs x\" common\n"),
        5,
        "piped logs are not supported by ringproxy",
    );
    assert_err(
        &err("CustomLog logs/x nosuchnick\n"),
        5,
        "unknown LogFormat nickname",
    );
    assert_err(
        &err("<Proxy balancer://x>\nProxyPass / balancer://x/\n</Proxy>\n"),
        6,
        "not allowed in <Proxy>",
    );
    assert_err(&err("LogLevel loud\n"), 5, "is not a level");
}

#[test]
fn require_denied_in_balancer_section() {
    let c = ok(
        "<Proxy balancer://x>\nBalancerMember http://127.0.0.1:1\nRequire all denied\n</Proxy>\n<Proxy *>\nRequire all granted\n</Proxy>\n",
    );
    assert!(c.balancers[0].denied);
}

#[test]
fn balancer_member_and_proxyset_outside_section() {
    let c = ok(concat!(
        "ProxyPass /app balancer://Out/app lbmethod=byrequests maxattempts=2\n",
        "ProxyPass /static !\n",
        "BalancerMember balancer://out http://127.0.0.1:8000/base route=r1\n",
        "ProxySet balancer://out stickysessionsep=Off scolonpathdelim=On forcerecovery=Off timeout=3\n",
        "ProxyPassReverse /app http://127.0.0.1:8000/base\n",
    ));
    let b = &c.balancers[0];
    assert_eq!(b.name, "balancer://out");
    assert_eq!(b.max_attempts, Some(2));
    assert_eq!(b.sticky_sep, None);
    assert!(b.scolonpathdelim && !b.force_recovery);
    assert_eq!(b.timeout, Some(Duration::from_secs(3)));
    assert_eq!(b.members[0].path, "/base");
    assert_eq!(b.members[0].url, "http://127.0.0.1:8000/base");
    assert!(
        matches!(&c.proxy_pass[0].target, PassTarget::Balancer { balancer: 0, path } if path == "/app")
    );
    assert!(matches!(c.proxy_pass[1].target, PassTarget::Exclude));
    assert!(
        matches!(&c.proxy_pass_reverse[0].target, ReverseTarget::Url(u) if u == "http://127.0.0.1:8000/base")
    );
}

#[test]
fn odd_input_gives_errors_not_panics() {
    let cases = [
        "<",
        "<>",
        "</>",
        "\\",
        "\"",
        "'",
        "Listen",
        "<Proxy",
        "<Proxy>\n</Proxy>",
        "Listen 8080\nRewriteRule ^ %{",
        "Listen 8080\nRewriteRule ^ \\",
        "Listen 8080\nRewriteRule ^ x [",
        "Listen 99999",
        "Listen :80",
        "Listen [::",
        "Listen 8080\nProxyPass / http://[::1",
        "Listen 8080\nProxyPass / http://h:0/",
        "Listen 8080\nProxySet",
        "Listen 8080\nBalancerMember",
        "Listen 8080\n<IfModule>\n</IfModule>",
        "Listen 8080\n<IfDefine !>\n</IfDefine>",
        "Listen 8080\nRewriteCond a",
        "Listen 8080\nLogFormat",
        "\u{feff}Listen 80\n\r\n\u{e9}\\\r\n",
    ];
    for text in cases {
        // Only the absence of a panic is checked; most of these are errors.
        let r = load_str(text, &path());
        if let Err(e) = r {
            assert!(!e.message.is_empty(), "{text:?}");
        }
    }
    assert!(
        load_str("Listen 8080\r\nServerName crlf.example\r\n", &path())
            .is_ok_and(|c| c.server_name == "crlf.example")
    );
}
