//! The access-log view of one exchange: `log::LogRecord` answered from the buffers the
//! request and response heads still sit in, so logging copies nothing until it renders.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::{Client, Exchange};
use crate::conf::Config;
use crate::io::Backend;
use crate::log::LogRecord;
use crate::shard::{Epoch, Shard};

struct LogView<'a, B: Backend> {
    c: &'a Client<B>,
    x: &'a Exchange<'a>,
    cfg: &'a Config,
    uid: Option<&'a [u8]>,
}

impl<B: Backend> LogRecord for LogView<'_, B> {
    fn remote_addr(&self) -> SocketAddr {
        self.c.peer
    }
    fn local_addr(&self) -> SocketAddr {
        self.c.local
    }
    fn request_line(&self) -> &[u8] {
        if self.x.head_valid {
            return self.c.req.request_line.get(&self.c.inbuf);
        }
        // A rejected head: its request line as received, as httpd logs it (after the empty
        // lines it skips).
        let b = crate::http::skip_empty_lines(&self.c.inbuf);
        let b = &b[..b.len().min(self.cfg.limits.request_line)];
        let end = b
            .iter()
            .position(|&c| c == b'\r' || c == b'\n')
            .unwrap_or(b.len());
        &b[..end]
    }
    fn method(&self) -> &[u8] {
        if self.x.head_valid {
            self.c.req.method_span.get(&self.c.inbuf)
        } else {
            b""
        }
    }
    fn path(&self) -> &[u8] {
        if self.x.head_valid {
            self.c.req.path.get(&self.c.inbuf)
        } else {
            b""
        }
    }
    fn query(&self) -> Option<&[u8]> {
        if self.x.head_valid {
            self.c.req.query.map(|q| q.get(&self.c.inbuf))
        } else {
            None
        }
    }
    fn protocol(&self) -> &[u8] {
        if self.x.head_valid {
            self.c.req.version.as_str().as_bytes()
        } else {
            b""
        }
    }
    fn status(&self) -> Option<u16> {
        self.x.status
    }
    fn body_bytes(&self) -> u64 {
        self.x.body_bytes
    }
    fn request_header(&self, name: &str) -> Option<&[u8]> {
        if self.x.head_valid {
            self.c.req.field(&self.c.inbuf, name)
        } else {
            None
        }
    }
    fn response_header(&self, name: &str) -> Option<&[u8]> {
        if self.x.has_resp {
            self.c.resp.field(&self.c.bbuf, name)
        } else {
            None
        }
    }
    fn env(&self, name: &str) -> Option<&[u8]> {
        let bal = self.x.balancer.map(|b| &self.cfg.balancers[b]);
        let member = bal.zip(self.x.member).map(|(b, m)| &b.members[m]);
        match name {
            "BALANCER_NAME" => bal.filter(|b| !b.implicit).map(|b| b.name.as_bytes()),
            "BALANCER_WORKER_NAME" => member
                .filter(|_| !bal.is_some_and(|b| b.implicit))
                .map(|m| m.url.as_bytes()),
            "BALANCER_WORKER_ROUTE" => member
                .filter(|_| !bal.is_some_and(|b| b.implicit))
                .map(|m| m.route.as_bytes()),
            "BALANCER_ROUTE_CHANGED" => self.x.route_changed.then_some(b"1"),
            "UNIQUE_ID" => self.uid,
            _ => None,
        }
    }
    fn server_name(&self) -> &[u8] {
        self.cfg.server_name.as_bytes()
    }
    fn handler(&self) -> Option<&[u8]> {
        self.x.balancer.map(|_| &b"proxy-server"[..])
    }
    fn conn_status(&self) -> u8 {
        if self.x.aborted {
            b'X'
        } else if self.x.keep_alive {
            b'+'
        } else {
            b'-'
        }
    }
    fn keepalive_requests(&self) -> u64 {
        self.c.served
    }
    fn bytes_in(&self) -> u64 {
        self.x.bytes_in
    }
    fn bytes_out(&self) -> u64 {
        self.x.bytes_out
    }
    fn start_time(&self) -> SystemTime {
        crate::log::wall_clock_at(self.x.t0)
    }
    fn duration(&self) -> Duration {
        self.x.t0.elapsed()
    }
    fn ssl_var(&self, _name: &str) -> Option<&[u8]> {
        None
    }
}

impl<B: Backend> Client<B> {
    /// Renders the exchange into every access log whose `env=` condition holds.
    pub(super) fn log(&self, shard: &Shard<B>, epoch: &Epoch<B>, x: &Exchange<'_>) {
        let cfg = &epoch.shared.config;
        if cfg.access_logs.is_empty() {
            return;
        }
        let mut id = [0u8; crate::log::UNIQUE_ID_LEN];
        let uid = if epoch.unique_id {
            shard.unique_ids.borrow_mut().next_at(
                crate::log::wall_clock_at(x.t0),
                self.id,
                &mut id,
            );
            Some(&id[..])
        } else {
            None
        };
        let view = LogView {
            c: self,
            x,
            cfg,
            uid,
        };
        for (i, l) in cfg.access_logs.iter().enumerate() {
            if let Some((var, want_set)) = &l.env_condition
                && view.env(var).is_some() != *want_set
            {
                continue;
            }
            shard.with_log_buf(epoch.log_slots[i], |buf| l.format.render(&view, buf));
        }
    }
}
