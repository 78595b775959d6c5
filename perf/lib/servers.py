"""The origin and the four proxies: generated configurations and command lines.

Every server listens on 127.0.0.1 only. The origin serves two ports, like the seed config's two
members; each proxy balances round-robin over both, routes /service1/... there unchanged (the
seed's RewriteRule) and keeps member connections alive.
"""

import http.client
import json
import os
import shutil
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# PERF_BUILT: another folder holding ringproxy, ringload and examples/relay_floor
# (tests/perf_compare.rs runs cargo test's debug builds).
BUILT = os.environ.get("PERF_BUILT") or os.path.join(REPO, "target", "release")
APACHE_ROOT = "/usr/lib/apache2"  # Debian's: modules/ is under it
PATH = "/service1/index.html"
TUTORIAL_BODY = b"Server response, port 8000\n"  # 27 bytes, as in the httpd tutorial

PROXIES = ("ringproxy", "haproxy", "nginx", "apache")
# Opt-in references, not in the default matrix: HAProxy relaying bytes in `mode tcp` (no HTTP
# parsing, one member connection per client connection) shows what the socket work alone costs;
# ringproxy on its epoll backend (IoBackend epoll) shows what io_uring changes, and on
# tokio-uring's loop (IoBackend uring) what our own io_uring loop saves; relay-floor
# (examples/relay_floor.rs: bytes relayed with ringproxy's io_uring operations, nothing else)
# what ringproxy costs above its own I/O.
REFERENCES = ("haproxy-tcp", "ringproxy-epoll", "ringproxy-uring", "relay-floor")
# ringproxy, ringload and the relay run from copies made at the start (copy_binaries), so that
# a rebuild during the run does not change what is measured half-way.
PROGRAMS = {"ringproxy": os.path.join(BUILT, "ringproxy"),
            "ringload": os.path.join(BUILT, "ringload"),
            "ringproxy-epoll": os.path.join(BUILT, "ringproxy"),
            "ringproxy-uring": os.path.join(BUILT, "ringproxy"),
            "relay-floor": os.path.join(BUILT, "examples", "relay_floor"),
            "haproxy": "haproxy", "haproxy-tcp": "haproxy", "nginx": "nginx",
            "apache": "apache2"}


def copy_binaries(folder):
    """Copies our binaries into folder and runs them from there from now on."""
    for name in ("ringproxy", "ringload", "relay-floor"):
        if os.access(PROGRAMS[name], os.X_OK):
            PROGRAMS[name] = shutil.copy2(PROGRAMS[name], os.path.join(folder, name))
    PROGRAMS["ringproxy-epoll"] = PROGRAMS["ringproxy-uring"] = PROGRAMS["ringproxy"]


class Ports:
    def __init__(self, base):
        self.members = (base, base + 1)
        self.status = base + 2  # nginx origin's stub_status
        self.proxy = base + 80

    def all(self):
        return [*self.members, self.status, self.proxy]


def missing_program(name):
    """Why a proxy or origin cannot run here, or None."""
    program = PROGRAMS.get(name, name)
    if os.path.isabs(program):
        return None if os.access(program, os.X_OK) else f"{program} not built"
    return None if shutil.which(program) else f"{program} not installed"


# ---- origin ----

class Origin:
    """One origin process serving both member ports with a body of a fixed size, with threads
    threads (ringload) or worker processes (nginx)."""

    def __init__(self, kind, ports, work, threads=1):
        self.kind, self.ports, self.work, self.threads = kind, ports, work, threads
        self.stats_path = os.path.join(work, "origin-stats.json")
        self.status_queries = 0  # nginx's accepts count each status request's connection

    def command(self, body):
        a, b = self.ports.members
        if self.kind == "ringload":
            return [PROGRAMS["ringload"], "origin", "--ports", f"{a},{b}", "--body-size", str(body),
                    "--threads", str(self.threads), "--stats-file", self.stats_path]
        self.write_nginx(body)
        return ["nginx", "-c", os.path.join(self.work, "origin.conf"), "-p", self.work]

    def write_nginx(self, body):
        www = os.path.join(self.work, "www", "service1")
        os.makedirs(www, exist_ok=True)
        with open(os.path.join(www, "index.html"), "wb") as f:
            f.write(body_bytes(body))
        a, b = self.ports.members
        write(os.path.join(self.work, "origin.conf"), f"""\
worker_processes {self.threads}; daemon off; pid {self.work}/origin.pid; error_log {self.work}/origin-error.log;
events {{ worker_connections 10000; }}
http {{
  access_log off; sendfile on; tcp_nopush on;
  keepalive_requests 100000000; keepalive_timeout 300s;
  default_type application/octet-stream;
  client_body_temp_path {self.work}/origin-tmp;
  server {{ listen 127.0.0.1:{a}; listen 127.0.0.1:{b}; root {self.work}/www; }}
  server {{ listen 127.0.0.1:{self.ports.status}; location = /status {{ stub_status; }} }}
}}
""")

    def connections_opened(self):
        """Connections the origin has accepted so far, on both member ports."""
        if self.kind == "ringload":
            return self.ringload_counter()
        self.status_queries += 1
        return self.nginx_accepts() - self.status_queries  # less the status requests' own

    def ringload_counter(self):
        time.sleep(0.25)  # the stats file is rewritten every 100 ms
        for _ in range(20):
            try:
                with open(self.stats_path) as f:
                    stats = json.load(f)
                return sum(port["connections"] for port in stats["ports"].values())
            except (OSError, ValueError, KeyError):
                time.sleep(0.05)
        raise RuntimeError(f"cannot read {self.stats_path}")

    def nginx_accepts(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.ports.status, timeout=5)
        try:
            conn.request("GET", "/status", headers={"Connection": "close"})
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        return int(text.splitlines()[2].split()[0])


def body_bytes(size):
    if size == len(TUTORIAL_BODY):
        return TUTORIAL_BODY
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


# ---- proxies ----

def proxy_command(name, workers, ports, work):
    """Writes the proxy's config into work and returns its command line."""
    return {"ringproxy": ringproxy, "ringproxy-epoll": ringproxy_epoll,
            "ringproxy-uring": ringproxy_uring, "haproxy": haproxy, "haproxy-tcp": haproxy_tcp,
            "relay-floor": relay_floor, "nginx": nginx, "apache": apache}[name](workers, ports, work)


def balancer_stanza(ports, httpd=False):
    """The seed config's stanza (conf/seed.conf), pointed at the two origin ports.

    httpd 2.4 refuses the seed's `ProxySet enablereuse=on` inside <Proxy balancer://...>
    ("unknown Balancer parameter": enablereuse is a worker parameter), so for Apache it goes on
    each BalancerMember instead.
    """
    a, b = ports.members
    reuse = " enablereuse=on" if httpd else ""
    lines = [
        "RewriteRule         ^/service1/(.*)       balancer://backend/service1/$1   [proxy,last]",
        "ProxyPassReverse    /                     balancer://backend/",
        "<Proxy balancer://backend>",
        f"    BalancerMember http://127.0.0.1:{a} route=backend-port-{a}{reuse}",
        f"    BalancerMember http://127.0.0.1:{b} route=backend-port-{b}{reuse}",
        "    Require all granted",
        "    Options None",
    ]
    lines += [] if httpd else ["    ProxySet enablereuse=on"]
    return "\n".join("    " + line for line in lines + ["</Proxy>"])


SEED_MODULES = """\
LoadModule        proxy_balancer_module           modules/mod_proxy_balancer.so
LoadModule        lbmethod_byrequests_module      modules/mod_lbmethod_byrequests.so
LoadModule        slotmem_shm_module              modules/mod_slotmem_shm.so
"""


def ringproxy(workers, ports, work, io="auto"):
    conf = os.path.join(work, "ringproxy.conf")
    write(conf, f"""\
IoBackend {io}
Listen 127.0.0.1:{ports.proxy}
ErrorLog {work}/ringproxy-error.log
MaxKeepAliveRequests 0
KeepAliveTimeout 300
{SEED_MODULES}
{balancer_stanza(ports)}
""")
    return [PROGRAMS["ringproxy"], "-f", conf, "-j", str(workers), "--grace", "2"]


def ringproxy_epoll(workers, ports, work):
    return ringproxy(workers, ports, work, io="epoll")


def ringproxy_uring(workers, ports, work):
    return ringproxy(workers, ports, work, io="uring")


def relay_floor(workers, ports, work):
    """examples/relay_floor.rs: bytes relayed with ringproxy's io_uring operations, no HTTP."""
    a, b = ports.members
    return [PROGRAMS["relay-floor"], str(ports.proxy), f"{a},{b}", str(workers)]


def haproxy(workers, ports, work, mode="http"):
    conf = os.path.join(work, f"haproxy-{mode}.cfg")
    a, b = ports.members
    http_only = """\
  timeout http-keep-alive 300s
  http-reuse always
""" if mode == "http" else ""
    route = "  use_backend backend if { path_beg /service1/ }" if mode == "http" else \
        "  default_backend backend"
    write(conf, f"""\
global
  nbthread {workers}
  maxconn 5000
defaults
  mode {mode}
  timeout connect 5s
  timeout client 300s
  timeout server 300s
{http_only}frontend proxy
  bind 127.0.0.1:{ports.proxy}
{route}
backend backend
  balance roundrobin
  server port-{a} 127.0.0.1:{a}
  server port-{b} 127.0.0.1:{b}
""")
    return ["haproxy", "-f", conf, "-db"]


def haproxy_tcp(workers, ports, work):
    return haproxy(workers, ports, work, mode="tcp")


def nginx(workers, ports, work):
    conf = os.path.join(work, "nginx.conf")
    a, b = ports.members
    write(conf, f"""\
worker_processes {workers}; daemon off; pid {work}/nginx.pid; error_log {work}/nginx-error.log;
worker_rlimit_nofile 65536;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  keepalive_requests 100000000; keepalive_timeout 300s;
  client_body_temp_path {work}/nginx-tmp-body; proxy_temp_path {work}/nginx-tmp-proxy;
  upstream backend {{
    server 127.0.0.1:{a}; server 127.0.0.1:{b};
    keepalive 512; keepalive_requests 100000000; keepalive_timeout 300s;
  }}
  server {{
    listen 127.0.0.1:{ports.proxy};
    location /service1/ {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_max_temp_file_size 0;
    }}
  }}
}}
""")
    return ["nginx", "-c", conf, "-p", work]


APACHE_LOADS = ["mpm_event", "authz_core", "proxy", "proxy_http", "rewrite"]


def apache(workers, ports, work):
    conf = os.path.join(work, "apache.conf")
    run_dir = os.path.join(work, "apache-run")
    os.makedirs(run_dir, exist_ok=True)
    threads = 256  # enough for every connection of c200 in one process
    loads = "\n".join(f"LoadModule {m}_module modules/mod_{m}.so" for m in APACHE_LOADS)
    write(conf, f"""\
ServerRoot {APACHE_ROOT}
ServerName 127.0.0.1
Listen 127.0.0.1:{ports.proxy}
PidFile {work}/apache.pid
DefaultRuntimeDir {run_dir}
ErrorLog {work}/apache-error.log
LogLevel warn
User www-data
Group www-data
{loads}
ServerLimit {workers}
StartServers {workers}
ThreadLimit {threads}
ThreadsPerChild {threads}
MaxRequestWorkers {workers * threads}
MinSpareThreads 1
MaxSpareThreads {workers * threads}
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 300
RewriteEngine On
{SEED_MODULES}
{balancer_stanza(ports, httpd=True)}
""")
    return ["apache2", "-DFOREGROUND", "-f", conf]


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def check_response(port, size, timeout=10.0):
    """One GET through 127.0.0.1:port; None when it returns 200 with a body of size bytes."""
    deadline = time.monotonic() + timeout
    problem = "no answer"
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", PATH)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status == 200 and len(body) == size:
                return None
            problem = (f"GET {PATH} answered {resp.status} with {len(body)} bytes, "
                       f"wanted 200 with {size}")
        except (OSError, http.client.HTTPException) as e:
            problem = f"GET {PATH}: {e}"
        finally:
            conn.close()
        time.sleep(0.2)
    return problem
