"""Processes perf/compare starts: tracked by PID, CPU counted by the kernel, all stopped on exit.

Every process is started in its own session (Ctrl-C in the terminal reaches only perf/compare,
which then stops them itself) and, where the kernel offers cgroups, in a cgroup of its role
(proxy, origin, generator), so that its CPU time is read from the cgroup's counter: it
covers every thread and child, also those that exited during the window.
"""

import os
import signal
import socket
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def find_cgroup_root():
    """The cgroup mount that counts CPU time: v1 cpuacct, else v2; None without either."""
    v1 = v2 = None
    with open("/proc/mounts") as f:
        for line in f:
            _, path, fstype, opts = line.split()[:4]
            if fstype == "cgroup" and "cpuacct" in opts.split(","):
                v1 = path
            elif fstype == "cgroup2" and v2 is None:
                v2 = path
    if v1:
        return v1, "v1"
    if v2:
        return v2, "v2"
    return None, None


class CpuGroups:
    """One cgroup per role under a directory named after this run; /proc sums as the fallback."""

    def __init__(self):
        root, self.version = find_cgroup_root()
        self.base = None
        if root:
            base = os.path.join(root, f"perf-compare-{os.getpid()}")
            try:
                os.mkdir(base)
                self.base = base
            except OSError:
                self.version = None
        self.method = f"cgroup {self.version}" if self.base else "/proc utime+stime"

    def path(self, role):
        """The cgroup directory of a role (made on first use), or None."""
        if not self.base:
            return None
        path = os.path.join(self.base, role)
        os.makedirs(path, exist_ok=True)
        return path

    def cpu_ns(self, role, pids):
        """CPU time used so far by the role's cgroup, or else by the live process trees of pids."""
        path = self.path(role)
        if path is None:
            return sum(proc_tree_ticks(p) for p in pids) * 1_000_000_000 // CLK_TCK
        if self.version == "v1":
            with open(os.path.join(path, "cpuacct.usage")) as f:
                return int(f.read())
        with open(os.path.join(path, "cpu.stat")) as f:
            usage = dict(line.split() for line in f)
        return int(usage["usage_usec"]) * 1000

    def pids(self, role):
        """Every process still in the role's cgroup (empty without cgroups)."""
        path = self.path(role)
        if path is None:
            return []
        with open(os.path.join(path, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]

    def remove(self):
        if not self.base:
            return
        for role in os.listdir(self.base):
            path = os.path.join(self.base, role)
            if os.path.isdir(path):
                try_rmdir(path)
        try_rmdir(self.base)


def try_rmdir(path):
    try:
        os.rmdir(path)
    except OSError:
        pass


def children(pid):
    """PIDs of the direct children of pid."""
    kids = []
    for task in list_dir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return kids


def tree(pid):
    """pid and all its live descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if os.path.exists(f"/proc/{p}"):
            out.append(p)
            todo += children(p)
    return out


def list_dir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (index 0 is the state)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def proc_tree_ticks(pid):
    total = 0
    for p in tree(pid):
        try:
            fields = stat_fields(p)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def rss_kb(pid):
    """Sum of VmRSS over pid and its descendants."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def machine_busy_ns():
    """Busy CPU time of the whole machine: user, nice, system, irq and softirq of all CPUs (not
    idle, iowait, or steal, the time the hypervisor gave to other machines)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    busy = sum(fields[0:3]) + fields[5] + fields[6]
    return busy * 1_000_000_000 // CLK_TCK


def set_affinity(pid, cpus):
    """Pins every thread of pid and of its descendants to cpus."""
    for p in tree(pid):
        for task in list_dir(f"/proc/{p}/task"):
            try:
                os.sched_setaffinity(int(task), cpus)
            except OSError:
                pass


def port_free(port, timeout=5.0):
    """True when nothing listens on 127.0.0.1:port, waiting up to `timeout` seconds for it: an
    io_uring server's listening socket outlives its process by moments (the ring is torn down
    after the exit, and a pending accept holds the socket until then)."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                return True
            except OSError:
                if time.monotonic() >= deadline:
                    return False
        time.sleep(0.05)


def wait_listening(port, proc, timeout):
    """Waits until 127.0.0.1:port accepts; False when proc exits or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Procs:
    """Starts processes, remembers them by PID, and stops them (TERM, then KILL) by PID."""

    def __init__(self, groups):
        self.groups = groups
        self.live = {}  # pid -> (Popen, role)

    def start(self, cmd, role, cpus, log_path, cwd=None):
        cgroup = self.groups.path(role)

        def setup():
            if cgroup:
                with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
            if cpus:
                os.sched_setaffinity(0, cpus)

        log = open(log_path, "ab")
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=cwd,
                preexec_fn=setup, start_new_session=True)
        finally:
            log.close()
        self.live[proc.pid] = (proc, role)
        return proc

    def wait(self, proc, timeout):
        """Waits for proc to exit by itself; stops it when the timeout passes. Returns its code."""
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(proc)
            return None
        self.forget(proc)
        return code

    def stop(self, proc, grace=10.0):
        """SIGTERM, then SIGKILL after grace seconds, to proc and to what it left behind."""
        if proc.pid not in self.live:
            return
        _, role = self.live[proc.pid]
        descendants = tree(proc.pid)[1:]
        signal_pid(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            signal_pid(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace)
        alive = {p for p in descendants if os.path.exists(f"/proc/{p}")}
        leftovers = set(self.groups.pids(role)) | alive
        for pid in leftovers:
            signal_pid(pid, signal.SIGKILL)
        self.forget(proc)

    def forget(self, proc):
        self.live.pop(proc.pid, None)

    def stop_all(self):
        for proc, _ in list(self.live.values()):
            try:
                self.stop(proc, grace=5.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        time.sleep(0.1)
        self.groups.remove()


def signal_pid(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
