"""Results of a perf/compare run: JSON, a markdown table, the targets check, charts."""

import json
import os
import re
import statistics

import charts
from names import LABELS, body_name, ms, num, target_name

METRICS = ("rps", "proxy_cpu_us_per_req", "machine_cpu_us_per_req", "origin_cpu_us_per_req",
           "generator_cpu_us_per_req", "p50_us", "p99_us", "p999_us", "proxy_rss_kb",
           "backend_conns", "errors", "other_cpu_pct")
CONTENTION_PCT = 10  # CPU used by other processes, % of one core, that a note points out


# ---- figures ----

def summarize(cell):
    """Median, min and max of every metric over the repetitions that ran."""
    ok = [r for r in cell["reps"] if not r.get("failed")]
    summary = {}
    for key in METRICS:
        values = [r[key] for r in ok if r.get(key) is not None]
        if values:
            summary[key] = {"median": statistics.median(values), "min": min(values),
                            "max": max(values)}
    summary["errors_total"] = sum(r["errors"] for r in ok)
    summary["reps_ok"] = len(ok)
    summary["failures"] = sorted({r["failed"] for r in cell["reps"] if r.get("failed")})
    return summary


def median(cell, key):
    figure = cell["summary"].get(key)
    return figure["median"] if figure else None


def index(cells):
    return {(c["target"], c["workers"], c["body"], c["conns"]): c for c in cells}


def bound(cell):
    return cell["workers"] * cell["conns"] if cell["target"] != "direct" else None


# ---- names and numbers ----

def cell_name(cell):
    return (f"{target_name(cell['target'], cell['workers'])}, {body_name(cell['body'])}, "
            f"c{cell['conns']}")


def rep_line(rec):
    if rec.get("failed"):
        return f"FAILED: {rec['failed']}"
    cpu = rec["proxy_cpu_us_per_req"]
    return (f"{num(rec['rps'])} req/s, proxy {num(cpu) if cpu else '–'} CPU-µs/req, "
            f"p99 {ms(rec['p99_us'])} ms, backend conns {rec.get('backend_conns', '–')}, "
            f"errors {rec['errors']}")


# ---- markdown ----

COLUMNS = ["c", "target", "req/s (× direct)", "proxy CPU-µs/req median (min–max)",
           "machine CPU-µs/req", "latency p50 / p99 / p99.9 ms", "wrk req/s, p99 ms",
           "proxy RSS MiB", "backend conns opened (bound)", "errors"]


def row(cell, direct):
    s = cell["summary"]
    name = target_name(cell["target"], cell["workers"])
    if not s["reps_ok"]:
        why = escape("; ".join(s["failures"]))
        return [str(cell["conns"]), name, f"failed: {why}"] + ["–"] * (len(COLUMNS) - 3)
    rss = median(cell, "proxy_rss_kb")
    failed = f" ({len(s['failures'])} reps failed)" if s["failures"] else ""
    return [str(cell["conns"]), name, rate_text(cell, direct), cpu_text(cell),
            num(median(cell, "machine_cpu_us_per_req")),
            " / ".join(ms(median(cell, k)) for k in ("p50_us", "p99_us", "p999_us")),
            wrk_text(cell["wrk"]), num(rss / 1024) if rss else "–", conns_text(cell),
            f"{s['errors_total']}{failed}"]


def rate_text(cell, direct):
    rps = median(cell, "rps")
    if cell["target"] == "direct" or not (direct and median(direct, "rps")):
        return num(rps)
    return f"{num(rps)} ({rps / median(direct, 'rps'):.2f})"


def cpu_text(cell):
    cpu = cell["summary"].get("proxy_cpu_us_per_req")
    if cell["target"] == "direct" or not cpu:
        return "–"
    return f"{num(cpu['median'])} ({num(cpu['min'])}–{num(cpu['max'])})"


def wrk_text(wrk):
    if not wrk:
        return "–"
    errors = f", {wrk['errors']} errors" if wrk["errors"] else ""
    return f"{num(wrk['rps'])}, {ms(wrk['p99_us'])}{errors}"


def conns_text(cell):
    opened = cell["summary"].get("backend_conns")
    if not opened:
        return "–"
    return f"{opened['max']:.0f}" + (f" ({bound(cell)})" if bound(cell) else "")


def escape(text):
    return text.replace("|", "\\|")


def table(cells, body):
    ix = index(cells)
    chosen = [c for c in cells if c["body"] == body]
    chosen.sort(key=lambda c: (c["conns"], c["target"] != "direct"))
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for cell in chosen:
        direct = ix.get(("direct", 0, body, cell["conns"]))
        lines.append("| " + " | ".join(row(cell, direct)) + " |")
    return "\n".join(lines)


def markdown(info, cells, charts_files, readme):
    """`readme`: perf/README.md's path relative to the results folder."""
    m = info["machine"]
    bodies = sorted({c["body"] for c in cells})
    parts = [
        f"# perf/compare, {info['date']}",
        "",
        f"`{info['command']}` at `{info['git']}`, {info['elapsed_s'] // 60} min "
        f"{info['elapsed_s'] % 60} s"
        + (" (**interrupted**: partial results)" if info["interrupted"] else "") + ".",
        "",
        f"Machine: {m['cpu']}, {m['memory_gib']} GiB, {m['kernel']}. "
        f"Origin: {info['origin']} (two ports). {info['reps']} repetition(s) of "
        f"{info['duration_s']:g} s per cell after {info['warmup_s']:g} s of warm-up; "
        "wrk cross-check "
        + (f"{info['wrk_s']:g} s in the first repetition." if info["wrk_s"] else "off.")
        + f" Proxy CPU counted by {info['cpu_counting']}."
        + (f" Placement: {info['placement']}." if info.get("placement")
           else "" if info["pinned"] else " Fewer than 2 CPUs: nothing pinned."),
        "",
        "Versions: " + "; ".join(f"{k}: {v}" for k, v in info["versions"].items()) + ".",
        "",
        f"Columns and how they are measured: [perf/README.md]({readme}). ×N is the number of "
        "proxy workers (ringproxy shards, HAProxy threads, nginx worker processes, Apache "
        "processes). Latencies are ringload's; the ratio is to direct at the same body and "
        "connection count.",
        "",
        "Files: " + ", ".join(f"[{name}]({name})" for name in charts_files),
        "",
    ]
    for body in bodies:
        parts += [f"## {body_name(body)}", "", table(cells, body), ""]
    parts += scaling(cells)
    parts += ["## Targets (issue 5)", "", *targets(cells), "", "## Notes", "", *notes(info, cells)]
    return "\n".join(parts) + "\n"


def scaling(cells):
    """Per body and connection count: each proxy's req/s (and its multiple of the proxy's own
    figure at the fewest workers) and CPU-µs/req for each worker count; with fewer than 3
    worker counts (the default matrix), nothing."""
    counts = sorted({c["workers"] for c in cells if c["target"] != "direct"})
    if len(counts) < 3:
        return []
    ix = index(cells)
    targets = sorted({c["target"] for c in cells if c["target"] != "direct"},
                     key=lambda t: (t != "ringproxy", t))
    head = ["workers"] + [f"{LABELS[t]} {what}" for t in targets
                          for what in (f"req/s (× its ×{counts[0]})", "CPU-µs/req")]
    if "ringproxy" in targets and "haproxy" in targets:
        head.append("ringproxy / HAProxy CPU")
    parts = ["## Scaling", "",
             "Requests/s with N workers, in brackets the multiple of the same proxy's figure "
             "with the fewest workers, "
             "and proxy CPU-µs per request; medians.", ""]
    for body in sorted({c["body"] for c in cells}):
        for conns in sorted({c["conns"] for c in cells}):
            parts += [f"{body_name(body)}, c{conns}:", "", "| " + " | ".join(head) + " |",
                      "|" + "---|" * len(head)]
            for n in counts:
                line = [f"×{n}"]
                for t in targets:
                    cell, one = ix.get((t, n, body, conns)), ix.get((t, counts[0], body, conns))
                    rps = cell and median(cell, "rps")
                    base = one and median(one, "rps")
                    line.append("–" if not rps else
                                num(rps) + (f" ({rps / base:.2f})" if base else ""))
                    line.append(num(cell and median(cell, "proxy_cpu_us_per_req")))
                if head[-1].startswith("ringproxy / "):
                    ours, theirs = (ix.get((t, n, body, conns)) for t in ("ringproxy", "haproxy"))
                    a = ours and median(ours, "proxy_cpu_us_per_req")
                    b = theirs and median(theirs, "proxy_cpu_us_per_req")
                    line.append(f"{a / b:.2f}" if a and b else "–")
                parts.append("| " + " | ".join(line) + " |")
            parts.append("")
    return parts


# ---- the done-when criteria ----

def targets(cells):
    """Each criterion of issue 5 evaluated on ringproxy's cells against HAProxy's, PASS/FAIL."""
    ix = index(cells)
    lines, failed, total = [], 0, 0
    smallest = min(c["body"] for c in cells)
    for cell in sorted(cells, key=lambda c: (c["workers"], c["body"], c["conns"])):
        if cell["target"] != "ringproxy":
            continue
        hap = ix.get(("haproxy", cell["workers"], cell["body"], cell["conns"]))
        for ok, text in checks(cell, hap, smallest):
            total += 1
            failed += ok is not True
            verdict = {True: "PASS", False: "FAIL", None: "CANNOT CHECK"}[ok]
            lines.append(f"- {verdict} {cell_name(cell)}: {text}")
    if not total:
        return ["No ringproxy cells in this run."]
    head = f"**{total - failed} of {total} checks pass.**"
    if smallest != 27:
        head += " (The 0.6× criterion is for 27-byte bodies; none were run.)"
    return [head, ""] + lines


def checks(cell, hap, smallest):
    """(True/False/None, text) for each criterion that applies to one ringproxy cell."""
    s = cell["summary"]
    if not s["reps_ok"]:
        return [(False, "failed: " + "; ".join(s["failures"]))]
    out = []
    cpu = median(cell, "proxy_cpu_us_per_req")
    factor = 0.6 if cell["body"] == 27 else 1.0
    if hap and hap["summary"]["reps_ok"]:
        limit = factor * median(hap, "proxy_cpu_us_per_req")
        pairs = ", ".join(f"{r:.2f}" for r in paired_ratios(cell, hap, "proxy_cpu_us_per_req"))
        out.append((cpu <= limit, f"proxy CPU {num(cpu)} µs/req ≤ {factor:g} × HAProxy's "
                                  f"{num(median(hap, 'proxy_cpu_us_per_req'))} = {num(limit)} "
                                  f"(ratio per repetition: {pairs})"))
        if cell["conns"] == 50:
            p99, hp99 = median(cell, "p99_us"), median(hap, "p99_us")
            out.append((p99 <= hp99, f"p99 {ms(p99)} ms ≤ HAProxy's {ms(hp99)} ms"))
    else:
        out.append((None, "no HAProxy figures to compare with"))
    errors = s["errors_total"] + len(s["failures"])
    out.append((errors == 0, f"errors {s['errors_total']}"
                + (f", {len(s['failures'])} failed repetitions" if s["failures"] else "") + " = 0"))
    opened = s.get("backend_conns", {}).get("max")
    if opened is not None:
        out.append((opened <= bound(cell), f"backend connections opened {opened:.0f} ≤ "
                                           f"{cell['workers']} × {cell['conns']} = {bound(cell)}"))
    return out


def paired_ratios(cell, other, key):
    """cell's figure over other's, repetition by repetition. The two runs of a repetition are
    within about 20 s of each other, so a drift of the host's speed slower than that moves these
    less than the ratio of the medians; their spread shows how much faster drift there was."""
    mine = {r["rep"]: r.get(key) for r in cell["reps"]}
    theirs = {r["rep"]: r.get(key) for r in other["reps"]}
    return [mine[k] / theirs[k] for k in sorted(mine) if mine[k] and theirs.get(k)]


# ---- notes ----

def notes(info, cells):
    out = [f"- {note}" for note in info.get("notes", [])]  # written by hand into the JSON
    busy = [(c, c["summary"]["other_cpu_pct"]["median"]) for c in cells
            if "other_cpu_pct" in c["summary"]]
    noisy = [(c, pct) for c, pct in busy if pct > CONTENTION_PCT]
    if busy:
        overall = statistics.median(p for _, p in busy)
        out.append(f"- CPU used by processes outside the benchmark while measuring (machine "
                   f"busy time less proxy, origin and generator): median {overall:.1f} % of one "
                   f"core over all cells.")
    if noisy:
        shown = "; ".join(f"{cell_name(c)} ({p:.0f} %)" for c, p in noisy[:12])
        more = f"; and {len(noisy) - 12} more" if len(noisy) > 12 else ""
        out.append(f"- Contention: in {len(noisy)} of {len(busy)} cells other processes used over "
                   f"{CONTENTION_PCT} % of a core: {shown}{more}. Their figures are noisier.")
    untrusted = [c for c in cells for r in c["reps"] if r.get("generator_trustworthy") is False]
    if untrusted:
        out.append("- ringload marked its run untrustworthy (generator behind or over 80 % of "
                   "its core) in: " + "; ".join(sorted({cell_name(c) for c in untrusted})) + ".")
    for c in cells:
        for why in c["summary"]["failures"]:
            out.append(f"- {cell_name(c)} failed: {why}")
    if info["interrupted"]:
        out.append("- The run was interrupted; cells not listed were not measured.")
    return out or ["- None."]


# ---- files ----

def write(out_dir, stem, info, cells):
    """Writes STEM.json, STEM.md and the charts into out_dir; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    for cell in cells:
        cell["summary"] = summarize(cell)
    chart_files = charts.write(out_dir, stem, cells)
    json_path = os.path.join(out_dir, stem + ".json")
    with open(json_path, "w") as f:
        json.dump({"info": info, "cells": cells}, f, indent=1)
        f.write("\n")
    md_path = os.path.join(out_dir, stem + ".md")
    names = [os.path.basename(p) for p in chart_files] + [os.path.basename(json_path)]
    with open(md_path, "w") as f:
        readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")
        f.write(markdown(info, cells, names, os.path.relpath(readme, os.path.abspath(out_dir))))
    return [md_path, json_path, *chart_files]


BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def update_readme(readme, results_dir):
    """Lists the results files in perf/README.md between its results markers, newest first."""
    if not os.path.exists(readme):
        return
    with open(readme) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        return
    rel = os.path.relpath(results_dir, os.path.dirname(readme))
    stems = sorted((n[:-3] for n in os.listdir(results_dir)
                    if re.fullmatch(r"\d{4}-\d\d-\d\d(-\d{4,6})?\.md", n)), reverse=True)
    items = []
    for stem in stems:
        extras = [n for n in sorted(os.listdir(results_dir))
                  if n.startswith(stem) and not n.endswith(".md")
                  and re.fullmatch(re.escape(stem) + r"(-[a-z]+)?\.(json|svg)", n)]
        items.append(f"- [{stem}]({rel}/{stem}.md)"
                     + "".join(f" · [{n[len(stem):].lstrip('-.')}]({rel}/{n})" for n in extras))
    block = "\n".join([BEGIN, *items, END])
    text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    with open(readme, "w") as f:
        f.write(text)


def console_summary(cells):
    lines = [f"{'target':<18} {'body':>7} {'c':>4} {'req/s':>8} {'CPU-µs/req':>10} "
             f"{'p99 ms':>7} {'conns':>6} {'errors':>6}"]
    for c in cells:
        s = c.get("summary") or summarize(c)
        if not s["reps_ok"]:
            lines.append(f"{target_name(c['target'], c['workers']):<18} {body_name(c['body']):>7} "
                         f"{c['conns']:>4} failed")
            continue
        cpu = median(c, "proxy_cpu_us_per_req") if c["target"] != "direct" else None
        conns = c["summary"].get("backend_conns", {}).get("max")
        lines.append(f"{target_name(c['target'], c['workers']):<18} {body_name(c['body']):>7} "
                     f"{c['conns']:>4} {num(median(c, 'rps')):>8} {num(cpu):>10} "
                     f"{ms(median(c, 'p99_us')):>7} {num(conns):>6} {s['errors_total']:>6}")
    return "\n".join(lines)
