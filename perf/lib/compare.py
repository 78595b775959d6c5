#!/usr/bin/env python3
"""perf/compare: ringproxy, HAProxy, nginx and Apache httpd side by side, and direct.

Run it through perf/compare (which installs the proxies and wrk and builds ringproxy first);
perf/README.md says what it measures and how.
"""

import argparse
import datetime
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import load
import procs as P
import report
import servers as S

REPO = S.REPO
DEFAULT_OUT = os.path.join(REPO, "perf", "results")
SCRATCH_OUT = os.path.join(DEFAULT_OUT, "scratch")
# Seconds a cell takes beyond its warm-up and measured run (start, checks, stop), measured here.
OVERHEAD = {"direct": 0.6, "proxy": 1.4}


def size_arg(text):
    """27, 16k, 1m: bytes, KiB, MiB."""
    units = {"k": 1024, "m": 1024 * 1024}
    text = text.strip().lower()
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def list_arg(convert):
    return lambda text: [convert(x) for x in text.split(",") if x.strip()]


def proxies_arg(text):
    names = list_arg(str.strip)(text)
    unknown = [n for n in names if n not in S.PROXIES + S.REFERENCES]
    if unknown:
        known = ", ".join(S.PROXIES + S.REFERENCES)
        raise argparse.ArgumentTypeError(f"unknown proxy {unknown[0]} (known: {known})")
    return names


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="perf/compare",
        description="ringproxy, HAProxy, nginx and Apache httpd side by side, and direct, on "
                    "127.0.0.1. See perf/README.md.")
    p.add_argument("--reps", type=int, default=3, help="repetitions of every cell (default 3)")
    p.add_argument("--duration", type=float, default=4, help="measured seconds per run (default 4)")
    p.add_argument("--warmup", type=float, default=1, help="warm-up seconds per cell (default 1)")
    p.add_argument("--wrk", type=float, default=3,
                   help="seconds of the wrk cross-check, in the first repetition only; 0: none "
                        "(default 3)")
    p.add_argument("--origin", choices=("ringload", "nginx"), default="ringload",
                   help="the backend: ringload origin or nginx with one worker (default ringload)")
    p.add_argument("--proxies", type=proxies_arg, default=list(S.PROXIES),
                   help="default ringproxy,haproxy,nginx,apache; for reference, on request: "
                        "haproxy-tcp (an L4 relay), ringproxy-epoll and ringproxy-uring (its "
                        "epoll backend and tokio-uring's io_uring loop), relay-floor "
                        "(examples/relay_floor.rs: ringproxy's io_uring I/O without HTTP)")
    p.add_argument("--bodies", type=list_arg(size_arg), default=[27, 16384, 1048576],
                   help="response body sizes (default 27,16k,1m)")
    p.add_argument("--conns", type=list_arg(int), default=[50, 200],
                   help="keep-alive client connections (default 50,200)")
    p.add_argument("--workers", type=list_arg(int), default=[1, 2],
                   help="proxy workers/threads (default 1,2)")
    p.add_argument("--quick", action="store_true",
                   help="27 B, c50, 1 worker, 1 repetition (the old perf/quick-compare)")
    p.add_argument("--out", help="results folder (default perf/results for the default matrix, "
                                 "perf/results/scratch otherwise)")
    p.add_argument("--render", metavar="RESULTS.json",
                   help="measure nothing: write RESULTS.md and the charts again from RESULTS.json "
                        "(after a note was added to its info.notes, or the report changed)")
    p.add_argument("--port-base", type=int, default=18400,
                   help="origin ports BASE and BASE+1, nginx origin status BASE+2, proxy BASE+80")
    args = p.parse_args(argv)
    if args.quick:
        args.bodies, args.conns, args.workers, args.reps = [27], [50], [1], 1
    args.default_matrix = all(p.get_default(k) == getattr(args, k) for k in
                              ("reps", "duration", "warmup", "wrk", "proxies", "bodies", "conns",
                               "workers"))
    args.out_given = args.out is not None
    if not args.out:
        args.out = DEFAULT_OUT if args.default_matrix else SCRATCH_OUT
    return args


class Layout:
    """Which CPUs each process may use (perf/README.md, 'Pinning').

    On two CPUs the proxy shares them with the origin and the generator. Where there are at
    least 3 CPUs beyond the most proxy workers of the run (the 16-CPU machine of the scaling
    run), the proxy gets CPUs of its own, the first N for N workers, and the origin and the
    generator get the rest, the same for every cell, with a thread per CPU."""

    def __init__(self, max_workers):
        cpus = sorted(os.sched_getaffinity(0))
        self.pinned = len(cpus) >= 2
        self.dedicated = len(cpus) - max_workers >= 3
        if self.dedicated:
            self.proxy_cpus = cpus[:max_workers]
            rest = cpus[max_workers:]
            split = max(1, len(rest) * 3 // 8)  # the origin costs less per response than ringload
            self.origin_cpus, self.generator_cpus = set(rest[:split]), set(rest[split:])
        elif self.pinned:
            self.a, self.b = {cpus[0]}, {cpus[1]}

    def origin_threads(self):
        return len(self.origin_cpus) if self.dedicated else 1

    def generator_threads(self):
        return len(self.generator_cpus) if self.dedicated else 1

    def place(self, target, workers):
        if self.dedicated:
            proxy = None if target == "direct" else set(self.proxy_cpus[:workers])
            return {"proxy": proxy, "origin": self.origin_cpus, "generator": self.generator_cpus}
        if not self.pinned:
            return {"proxy": None, "origin": None, "generator": None}
        if target == "direct":
            return {"proxy": None, "origin": self.b, "generator": self.a}
        if workers == 1:
            return {"proxy": self.a, "origin": self.b, "generator": self.b}
        return {"proxy": self.a | self.b, "origin": self.a, "generator": self.b}

    def describe(self):
        if not self.dedicated:
            return "two CPUs shared" if self.pinned else "nothing pinned (fewer than 2 CPUs)"
        return (f"proxy CPUs {span(self.proxy_cpus)} (the first N for N workers), origin "
                f"{span(self.origin_cpus)}, generator {span(self.generator_cpus)}, a thread per "
                "CPU")


def span(cpus):
    cpus = sorted(cpus)
    return f"{cpus[0]}" if len(cpus) == 1 else f"{cpus[0]}–{cpus[-1]}"


def matrix(args):
    """Cells of one repetition, in run order: per body size, per connection count, targets."""
    targets = [("direct", 0)] + [(p, w) for p in args.proxies for w in args.workers]
    return [(body, conns, target, workers) for body in args.bodies for conns in args.conns
            for target, workers in targets]


def estimate_s(args):
    runs = 0.0
    for _, _, target, _ in matrix(args):
        kind = "direct" if target == "direct" else "proxy"
        runs += args.reps * (args.warmup + args.duration + OVERHEAD[kind])
        runs += args.wrk + 0.3 if args.wrk else 0
    return runs + args.reps * len(args.bodies) * 1.0  # origin starts


class Run:
    """One perf/compare run: its processes, its work folder, and the cells measured so far."""

    def __init__(self, args):
        self.args = args
        self.ports = S.Ports(args.port_base)
        self.layout = Layout(max(args.workers))
        self.groups = P.CpuGroups()
        self.procs = P.Procs(self.groups)
        self.work = tempfile.mkdtemp(prefix="perf-compare-")
        os.chmod(self.work, 0o755)  # nginx and Apache workers run as www-data
        S.copy_binaries(self.work)
        self.origin = S.Origin(args.origin, self.ports, self.work, self.layout.origin_threads())
        self.git = git_describe()
        self.cells = {}
        self.started = time.monotonic()
        self.done = 0

    def cell(self, body, conns, target, workers):
        key = (target, workers, body, conns)
        if key not in self.cells:
            self.cells[key] = {"target": target, "workers": workers, "body": body,
                               "conns": conns, "reps": [], "wrk": None}
        return self.cells[key]

    def run(self):
        for rep in range(1, self.args.reps + 1):
            for body in self.args.bodies:
                self.run_body(rep, body)

    def run_body(self, rep, body):
        cells = [c for c in matrix(self.args) if c[0] == body]
        origin, problem = self.start_origin(body)
        try:
            for _, conns, target, workers in cells:
                cell = self.cell(body, conns, target, workers)
                if problem:
                    cell["reps"].append({"rep": rep, "failed": problem})
                else:
                    self.measure(cell, rep, origin)
                self.progress(cell, rep)
        finally:
            if origin:
                self.procs.stop(origin)

    def start_origin(self, body):
        """Starts the origin for one body size; (process, None) or (None, why not)."""
        name = "ringload origin" if self.args.origin == "ringload" else "nginx origin"
        problem = S.missing_program("ringload" if self.args.origin == "ringload" else "nginx")
        busy = [p for p in self.ports.all() if not P.port_free(p)]
        if problem or busy:
            return None, problem or f"port {busy[0]} is in use"
        log = f"{self.work}/origin.log"
        cpus = self.layout.origin_cpus if self.layout.dedicated else None
        proc = self.procs.start(self.origin.command(body), "origin", cpus, log)
        if not P.wait_listening(self.ports.members[1], proc, timeout=10):
            self.procs.stop(proc)
            return None, f"{name} did not start: {tail(log)}"
        problem = S.check_response(self.ports.members[0], body)
        if problem:
            self.procs.stop(proc)
            return None, f"{name}: {problem}"
        return proc, None

    def measure(self, cell, rep, origin):
        target, workers = cell["target"], cell["workers"]
        place = self.layout.place(target, workers)
        if not self.layout.dedicated:  # else pinned from its start, each thread to a CPU
            P.set_affinity(origin.pid, place["origin"])
        proxy = None
        try:
            opened_before = self.origin.connections_opened()
            if target != "direct":
                proxy = self.start_proxy(target, workers, cell["body"], place["proxy"])
            record = self.load_cell(cell, rep, origin, proxy, place["generator"])
            record["backend_conns"] = self.origin.connections_opened() - opened_before
        except (RuntimeError, OSError) as e:
            record = {"rep": rep, "failed": str(e)}
        finally:
            if proxy:
                self.procs.stop(proxy)
        cell["reps"].append(record)

    def start_proxy(self, target, workers, body, cpus):
        problem = S.missing_program(target)
        if problem:
            raise CellFailed(problem)
        if not P.port_free(self.ports.proxy):
            raise CellFailed(f"port {self.ports.proxy} is in use")
        log = f"{self.work}/{target}.log"
        cmd = S.proxy_command(target, workers, self.ports, self.work)
        proxy = self.procs.start(cmd, "proxy", cpus, log, cwd=self.work)
        if not P.wait_listening(self.ports.proxy, proxy, timeout=15):
            self.procs.stop(proxy)
            raise CellFailed(f"{target} did not start: {tail(log)} {self.error_logs(target)}")
        problem = S.check_response(self.ports.proxy, body)
        if problem:
            self.procs.stop(proxy)
            raise CellFailed(f"{target}: {problem} {self.error_logs(target)}")
        return proxy

    def error_logs(self, target):
        return tail(f"{self.work}/{target}-error.log")

    def load_cell(self, cell, rep, origin, proxy, gen_cpus):
        """Warm-up, then the measured ringload run with CPU counted around it, then wrk."""
        port = self.ports.proxy if proxy else self.ports.members[0]
        url = f"http://127.0.0.1:{port}{S.PATH}"
        conns, a = cell["conns"], self.args
        gen = load.Generator(self.procs, gen_cpus, self.layout.generator_threads(), self.work)
        gen.ringload(url, conns, a.warmup)
        pids = [proxy.pid] if proxy else []
        before = self.cpu_sample(pids, origin.pid)
        report_path = f"{self.work}/ringload.json"
        result = load.summarize_ringload(
            gen.ringload(url, conns, a.duration, report_path))
        after = self.cpu_sample(pids, origin.pid)
        record = {"rep": rep, **result, **cpu_figures(before, after, result)}
        record["proxy_rss_kb"] = P.rss_kb(proxy.pid) if proxy else None
        if rep == 1 and a.wrk:
            cell["wrk"] = gen.wrk(url, conns, a.wrk)
        return record

    def cpu_sample(self, proxy_pids, origin_pid):
        return {"t": time.monotonic(),
                "proxy": self.groups.cpu_ns("proxy", proxy_pids) if proxy_pids else 0,
                "origin": self.groups.cpu_ns("origin", [origin_pid]),
                "machine": P.machine_busy_ns()}

    def progress(self, cell, rep):
        self.done += 1
        total = len(matrix(self.args)) * self.args.reps
        elapsed = time.monotonic() - self.started
        left = elapsed / self.done * (total - self.done)
        print(f"[{self.done}/{total} {fmt_min(elapsed)} elapsed, ~{fmt_min(left)} left] "
              f"{report.cell_name(cell)} rep {rep}: {report.rep_line(cell['reps'][-1])}",
              flush=True)


class CellFailed(RuntimeError):
    """A cell that could not be measured; its reason goes into the results."""


def cpu_figures(before, after, result):
    """CPU-µs per request of the proxy, the origin and the whole machine, and the CPU left over."""
    n = max(result["responses"], 1)
    seconds = after["t"] - before["t"]
    used = {k: (after[k] - before[k]) / 1000 for k in ("proxy", "origin", "machine")}  # µs
    generator_us = result["generator_cpu_us_per_req"] * n
    other_us = used["machine"] - used["proxy"] - used["origin"] - generator_us
    return {
        "proxy_cpu_us_per_req": used["proxy"] / n,
        "origin_cpu_us_per_req": used["origin"] / n,
        "machine_cpu_us_per_req": used["machine"] / n,
        "other_cpu_pct": max(other_us, 0) / (seconds * 1e6) * 100,
        "window_s": seconds,
    }


def git_describe():
    """The tree ringproxy was built from; a copy without git (a lent machine) says so."""
    try:
        out = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return out or os.environ.get("PERF_GIT", "unknown")


def tail(path, chars=300):
    try:
        with open(path, errors="replace") as f:
            return " ".join(f.read()[-chars:].split())
    except OSError:
        return ""


def fmt_min(seconds):
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "not available"


def machine_facts():
    with open("/proc/cpuinfo") as f:
        models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    u = os.uname()
    siblings = read_first("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list")
    return {"cpu": f"{len(models)} x {models[0] if models else 'unknown'}"
                   + (f" (the core of CPU 0 runs CPUs {siblings})" if siblings else ""),
            "memory_gib": round(mem_kb / 1024 / 1024, 1),
            "kernel": f"{u.sysname} {u.release} {u.machine}"}


def read_first(path):
    try:
        with open(path) as f:
            return f.readline().strip()
    except OSError:
        return ""


def built():
    """When the ringproxy binary under test was built, and a digest of it."""
    path = S.PROGRAMS["ringproxy"]
    if not os.path.exists(path):
        return ""
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    stamp = datetime.datetime.fromtimestamp(os.path.getmtime(path)).astimezone()
    return f" (built {stamp:%Y-%m-%d %H:%M %Z}, sha256 {digest})"


def meta(args, run, started, argv):
    return {
        "date": started.strftime("%Y-%m-%d %H:%M %Z").strip(),
        "command": " ".join(["perf/compare", shlex.join(argv)]).strip(),
        "git": run.git,  # the tree ringproxy was built from
        "machine": machine_facts(),
        "versions": {"ringproxy": version([S.PROGRAMS["ringproxy"], "--version"]) + built(),
                     "haproxy": version(["haproxy", "-v"]), "nginx": version(["nginx", "-v"]),
                     "apache": version(["apache2", "-v"]), "wrk": version(["wrk", "-v"])},
        "origin": args.origin, "reps": args.reps, "duration_s": args.duration,
        "warmup_s": args.warmup, "wrk_s": args.wrk, "cpu_counting": run.groups.method,
        "pinned": run.layout.pinned, "placement": run.layout.describe(),
        "default_matrix": args.default_matrix,
    }


def stem(args, started):
    """Results file names: the date, or date and time for a second run that day or a
    non-default matrix."""
    day = started.strftime("%Y-%m-%d")
    if args.default_matrix and not os.path.exists(os.path.join(args.out, day + ".md")):
        return day
    return started.strftime("%Y-%m-%d-%H%M%S")


def render(path):
    with open(path) as f:
        results = json.load(f)
    folder, name = os.path.split(os.path.abspath(path))
    paths = report.write(folder, name.removesuffix(".json"), results["info"], results["cells"])
    print("wrote " + ", ".join(os.path.relpath(p) for p in paths))
    return 0


def main(argv):
    args = parse_args(argv)
    if args.render:
        return render(args.render)
    started = datetime.datetime.now().astimezone()
    run = Run(args)
    n = len(matrix(args))
    wrk = f", + wrk {args.wrk:g} s once" if args.wrk else ""
    print(f"perf/compare: {n} cells x {args.reps} repetitions, {args.duration:g} s each "
          f"(+ {args.warmup:g} s warm-up{wrk}); "
          f"expected about {fmt_min(estimate_s(args))} min. Origin: {args.origin}; "
          f"CPU counted by {run.groups.method}; work folder {run.work}", flush=True)
    interrupted = False
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also where started ignoring it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run.run()
    except (KeyboardInterrupt, SystemExit):
        interrupted = True
        print("\nperf/compare: interrupted; stopping what it started", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        run.procs.stop_all()
    if interrupted and not args.out_given:
        args.out = SCRATCH_OUT  # partial results are not the default matrix's
    info = meta(args, run, started, argv)
    info["elapsed_s"] = round(time.monotonic() - run.started)
    info["interrupted"] = interrupted
    cells = [c for c in run.cells.values() if c["reps"]]
    paths = report.write(args.out, stem(args, started), info, cells)
    if args.out == DEFAULT_OUT:
        report.update_readme(os.path.join(REPO, "perf", "README.md"), DEFAULT_OUT)
    print(report.console_summary(cells))
    print("results: " + ", ".join(os.path.relpath(p) for p in paths))
    if any(r.get("failed") for c in run.cells.values() for r in c["reps"]):
        print(f"some cells failed; logs are in {run.work}")
    else:
        shutil.rmtree(run.work, ignore_errors=True)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
