"""The load generators: ringload (the measured runs) and wrk (the cross-check)."""

import json
import re

from servers import PROGRAMS

TIMEOUT = "5s"  # a response slower than this counts as an error in ringload


class Generator:
    """ringload and wrk with the same CPUs and thread count."""

    def __init__(self, procs, cpus, threads, work):
        self.procs, self.cpus, self.threads, self.work = procs, cpus, threads, work

    def ringload(self, url, conns, seconds, json_path=None):
        """One closed-loop ringload run; its JSON report (or None for a warm-up)."""
        cmd = [PROGRAMS["ringload"], "-c", str(conns), "-t", str(self.threads), "-d",
               f"{seconds}s", "--timeout", TIMEOUT, "--quiet", url]
        if json_path:
            cmd[1:1] = ["--json", json_path]
        proc = self.procs.start(cmd, "generator", self.cpus, f"{self.work}/ringload.log")
        code = self.procs.wait(proc, timeout=seconds + 30)
        if code is None:
            raise RuntimeError(f"ringload did not end within {seconds + 30} s")
        if not json_path:
            return None
        if code != 0:
            raise RuntimeError(f"ringload exited {code} (see {self.work}/ringload.log)")
        with open(json_path) as f:
            return json.load(f)

    def wrk(self, url, conns, seconds):
        """One wrk run (--latency): requests/s, p99 and errors."""
        out_path = f"{self.work}/wrk.out"
        open(out_path, "w").close()
        # wrk takes whole seconds only ("-d1.0s" is refused)
        cmd = ["wrk", f"-t{self.threads}", f"-c{conns}", f"-d{max(1, round(seconds))}s",
               "--latency", url]
        proc = self.procs.start(cmd, "generator", self.cpus, out_path)
        if self.procs.wait(proc, timeout=seconds + 30) is None:
            raise RuntimeError("wrk did not end")
        with open(out_path) as f:
            return parse_wrk(f.read())


def summarize_ringload(report):
    """What a cell keeps of a ringload report."""
    statuses = {int(k): v for k, v in report["status"].items()}
    non_2xx = sum(v for k, v in statuses.items() if not 200 <= k < 300)
    lat = report["latency"]
    return {
        "responses": report["responses"],
        "rps": report["rate"],
        "seconds": report["duration_s"],
        "p50_us": lat["p50"], "p99_us": lat["p99"], "p999_us": lat["p999"],
        "errors": report["error_count"] + non_2xx,
        "error_kinds": report["errors"],
        "status": report["status"],
        "at_stop": {k: report.get(k) for k in ("in_flight_at_stop", "drained", "failed_in_drain",
                                               "abandoned") if k in report},
        "per_second": [{k: i[k] for k in ("t", "count", "p99")} for i in report["intervals"]],
        "generator_cpu_us_per_req": report["cost"]["cpu_us_per_request"],
        "generator_trustworthy": report["verdict"]["trustworthy"],
    }


def parse_wrk(text):
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not (rps and p99):
        raise RuntimeError(f"cannot read wrk's output: {text[-300:]!r}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    scale = {"us": 1, "ms": 1e3, "s": 1e6}[p99.group(2)]
    return {"rps": float(rps.group(1)), "p99_us": float(p99.group(1)) * scale, "errors": errors}
