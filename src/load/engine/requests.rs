//! The requests a run sends, rendered once: every target's request bytes in one buffer (each
//! send is a segment of it, so sending copies and allocates nothing), and the weighted choice
//! of target per connection and per request.

use std::net::SocketAddr;

use crate::load::plan::{Plan, Target};

/// Each connection holds a copy of `bytes`; requests are repeated back to back only while the
/// copy stays this small.
const REPEAT_MAX: usize = 4096;

/// All rendered requests: target i's request is `copies` times in a row in `bytes`, from
/// `spans[i]` on, so that a batch of pipelined requests to one target is one contiguous
/// segment (one send; on our own io_uring loop linked with the read, see io::Conn).
pub struct Requests {
    pub bytes: Vec<u8>,
    spans: Vec<(usize, usize)>,
    copies: usize,
    pub head_only: bool,
}

impl Requests {
    pub fn render(plan: &Plan) -> Requests {
        let mut bytes = Vec::new();
        let mut spans = Vec::with_capacity(plan.targets.len());
        let has_host = plan
            .headers
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("host:"));
        for t in &plan.targets {
            let start = bytes.len();
            bytes.extend_from_slice(format!("{} {} HTTP/1.1\r\n", plan.method, t.path).as_bytes());
            if !has_host {
                let default_port = if t.tls { 443 } else { 80 };
                let host = if t.port == default_port {
                    t.host.clone()
                } else {
                    format!("{}:{}", t.host, t.port)
                };
                bytes.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
            }
            for h in &plan.headers {
                bytes.extend_from_slice(h.as_bytes());
                bytes.extend_from_slice(b"\r\n");
            }
            if !plan.body.is_empty() || matches!(plan.method.as_str(), "POST" | "PUT" | "PATCH") {
                bytes.extend_from_slice(
                    format!("Content-Length: {}\r\n", plan.body.len()).as_bytes(),
                );
            }
            if !plan.keepalive {
                bytes.extend_from_slice(b"Connection: close\r\n");
            }
            bytes.extend_from_slice(b"\r\n");
            bytes.extend_from_slice(&plan.body);
            spans.push((start, bytes.len()));
        }
        let copies = (REPEAT_MAX / bytes.len().max(1)).clamp(1, plan.pipeline.max(1));
        if copies > 1 {
            let once = std::mem::take(&mut bytes);
            for span in spans.iter_mut() {
                let start = bytes.len();
                for _ in 0..copies {
                    bytes.extend_from_slice(&once[span.0..span.1]);
                }
                *span = (start, start + (span.1 - span.0));
            }
        }
        Requests {
            bytes,
            spans,
            copies,
            head_only: plan.method == "HEAD",
        }
    }

    /// The `k`-th request of a batch to target `t`: consecutive `k` to one target are
    /// contiguous in `bytes` (up to `copies`).
    pub fn span(&self, t: usize, k: usize) -> (usize, usize) {
        let (a, b) = self.spans[t];
        let off = (k % self.copies) * (b - a);
        (a + off, b + off)
    }
}

/// Smooth weighted round robin (as nginx and httpd's byrequests): deterministic, and exact
/// over every window of sum(weights) picks.
pub struct Weighted {
    items: Vec<(usize, i64)>,
    current: Vec<i64>,
    total: i64,
}

impl Weighted {
    pub fn new(items: Vec<(usize, u32)>) -> Weighted {
        let total = items.iter().map(|&(_, w)| w as i64).sum();
        let current = vec![0; items.len()];
        Weighted {
            items: items.into_iter().map(|(i, w)| (i, w as i64)).collect(),
            current,
            total,
        }
    }

    pub fn next(&mut self) -> usize {
        let mut best = 0;
        for (k, &(_, w)) in self.items.iter().enumerate() {
            self.current[k] += w;
            if self.current[k] > self.current[best] {
                best = k;
            }
        }
        self.current[best] -= self.total;
        self.items[best].0
    }
}

/// The targets grouped by address: a connection goes to one address and picks among that
/// address's targets per request.
pub struct Groups {
    pub addrs: Vec<SocketAddr>,
    /// Per address: (target index, weight).
    pub members: Vec<Vec<(usize, u32)>>,
}

impl Groups {
    pub fn new(targets: &[Target]) -> Groups {
        let mut addrs: Vec<SocketAddr> = Vec::new();
        let mut members: Vec<Vec<(usize, u32)>> = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            match addrs.iter().position(|&a| a == t.addr) {
                Some(g) => members[g].push((i, t.weight)),
                None => {
                    addrs.push(t.addr);
                    members.push(vec![(i, t.weight)]);
                }
            }
        }
        Groups { addrs, members }
    }

    /// Which address group each of `conns` connections uses, spread by total weight.
    pub fn assign(&self, conns: usize) -> Vec<usize> {
        let mut w = Weighted::new(
            self.members
                .iter()
                .enumerate()
                .map(|(g, m)| (g, m.iter().map(|x| x.1).sum()))
                .collect(),
        );
        (0..conns).map(|_| w.next()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipelined_batch_to_one_target_is_one_contiguous_run() {
        let args = ["-p", "4", "http://127.0.0.1:1/x"].map(std::ffi::OsString::from);
        let Ok(crate::load::cli::Command::Run(plan)) = crate::load::cli::parse(args.to_vec())
        else {
            panic!("the command line must parse");
        };
        let r = Requests::render(&plan);
        let one = b"GET /x HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n";
        assert_eq!(r.bytes.len(), 4 * one.len());
        let mut end = r.span(0, 0).0;
        for k in 0..6 {
            let (a, b) = r.span(0, k);
            assert_eq!(&r.bytes[a..b], one);
            if k % 4 != 0 {
                assert_eq!(a, end, "request {k} follows request {}", k - 1);
            }
            end = b;
        }
    }

    #[test]
    fn weighted_is_exact_per_cycle() {
        let mut w = Weighted::new(vec![(0, 1), (1, 2), (2, 3)]);
        let mut n = [0; 3];
        for _ in 0..600 {
            n[w.next()] += 1;
        }
        assert_eq!(n, [100, 200, 300]);
    }
}
