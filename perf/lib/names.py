"""How targets and body sizes are named in tables, charts and progress lines."""

LABELS = {"direct": "direct", "ringproxy": "ringproxy", "haproxy": "HAProxy",
          "haproxy-tcp": "HAProxy mode tcp", "ringproxy-epoll": "ringproxy epoll",
          "ringproxy-uring": "ringproxy tokio-uring", "relay-floor": "io_uring byte relay",
          "nginx": "nginx", "apache": "Apache httpd"}


def body_name(size):
    mib, kib = 1024 * 1024, 1024
    if size >= mib and size % mib == 0:
        return f"{size // mib} MiB"
    if size >= kib and size % kib == 0:
        return f"{size // kib} KiB"
    return f"{size} B"


def target_name(target, workers):
    return LABELS[target] if target == "direct" else f"{LABELS[target]} ×{workers}"


def num(x):
    """x with about three significant digits, thousands as k; – for None."""
    if x is None:
        return "–"
    ax = abs(x)
    if ax >= 100000:
        return f"{x / 1000:.0f}k"
    if ax >= 10000:
        return f"{x / 1000:.1f}k"
    if ax >= 100:
        return f"{x:.0f}"
    return f"{x:.1f}" if ax >= 10 else f"{x:.2f}"


def ms(us):
    return "–" if us is None else num(us / 1000)
