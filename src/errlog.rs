//! The error log (`ErrorLog`, `LogLevel`), in httpd's line shape:
//! `[Wed Nov 25 16:45:44.123456 2026] [proxy:error] [pid 12:tid 13] [client 1.2.3.4:5] msg`.
//! Lines are rare (start-up, reloads, failures), so each is one append write(2).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use crate::conf::model::LogLevel;

pub struct ErrorLog {
    /// None: standard error.
    file: Option<File>,
    level: std::sync::atomic::AtomicU8,
}

impl ErrorLog {
    pub fn open(path: Option<&Path>) -> std::io::Result<ErrorLog> {
        let file = match path {
            Some(p) => Some(OpenOptions::new().create(true).append(true).open(p)?),
            None => None,
        };
        Ok(ErrorLog {
            file,
            level: std::sync::atomic::AtomicU8::new(LogLevel::Warn as u8),
        })
    }

    pub fn set_level(&self, level: LogLevel) {
        self.level
            .store(level as u8, std::sync::atomic::Ordering::Relaxed);
    }

    /// True when lines of `level` are written.
    pub fn enabled(&self, level: LogLevel) -> bool {
        level as u8 <= self.level.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Writes one line at `level`, printed with httpd's name ("error", "warn", ...). Notices are
    /// always written, as httpd does for start-up and shutdown messages.
    pub fn write(&self, level: LogLevel, module: &str, msg: &str) {
        self.write_client(level, module, None, msg)
    }

    pub fn write_client(
        &self,
        level: LogLevel,
        module: &str,
        client: Option<std::net::SocketAddr>,
        msg: &str,
    ) {
        if level != LogLevel::Notice && !self.enabled(level) {
            return;
        }
        let mut line = Vec::with_capacity(160 + msg.len());
        line.push(b'[');
        stamp(&mut line, SystemTime::now());
        // SAFETY: getpid/gettid have no preconditions.
        let (pid, tid) = unsafe { (libc::getpid(), libc::gettid()) };
        let _ = write!(line, "] [{module}:{}] [pid {pid}:tid {tid}] ", level.name());
        if let Some(c) = client {
            let _ = write!(line, "[client {c}] ");
        }
        line.extend_from_slice(msg.as_bytes());
        line.push(b'\n');
        let _ = match &self.file {
            Some(f) => (&*f).write_all(&line),
            None => std::io::stderr().write_all(&line),
        };
    }
}

/// httpd's error-log time: `Wed Nov 25 16:45:44.123456 2026`, local time.
fn stamp(out: &mut Vec<u8>, t: SystemTime) {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as libc::time_t;
    // SAFETY: localtime_r and strftime write into the provided, sized buffers.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&secs, &mut tm);
        let mut a = [0u8; 32];
        let n = libc::strftime(
            a.as_mut_ptr().cast(),
            a.len(),
            c"%a %b %d %H:%M:%S".as_ptr(),
            &tm,
        );
        out.extend_from_slice(&a[..n]);
        let _ = write!(out, ".{:06} {}", d.subsec_micros(), tm.tm_year + 1900);
    }
}
