//! ringproxy's own responses: errors, redirects. Shaped like httpd's canned pages, always with
//! Content-Length, and `Connection: close` where httpd drops the connection.

use std::io::Write;

use crate::http::status_reason;
use crate::io::Gather;

/// Statuses after which httpd closes the client connection (`ap_status_drops_connection`).
pub fn drops_connection(status: u16) -> bool {
    matches!(
        status,
        400 | 408 | 411 | 413 | 414 | 431 | 500 | 501 | 503 | 505
    )
}

fn explanation(status: u16) -> &'static str {
    match status {
        400 => "Your browser sent a request that this server could not understand.",
        403 => "You don't have permission to access this resource.",
        404 => "The requested URL was not found on this server.",
        408 => "Server timeout waiting for the HTTP request from the client.",
        410 => "The requested resource is no longer available on this server.",
        413 => {
            "The requested resource does not allow request data, or the amount of data provided exceeds the capacity limit."
        }
        414 => "The requested URL's length exceeds the capacity limit for this server.",
        431 => "Your browser sent a request whose header fields exceed this server's limit.",
        501 => "The requested method or transfer coding is not supported by this server.",
        502 => "The proxy server received an invalid response from an upstream server.",
        503 => {
            "The server is temporarily unable to service your request due to maintenance downtime or capacity problems. Please try again later."
        }
        504 => "The gateway did not receive a timely response from the upstream server.",
        505 => "The HTTP version of the request is not supported by this server.",
        _ => "The server could not handle the request.",
    }
}

/// The `Connection` field of a response, from the keep-alive verdict and client version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnHeader {
    /// `Connection: close`: the proxy closes after this response.
    Close,
    /// `Connection: Keep-Alive`: an HTTP/1.0 client's connection stays open.
    KeepAlive,
    /// None: HTTP/1.1 keep-alive is the default.
    Default,
}

impl ConnHeader {
    pub fn field(self) -> &'static [u8] {
        match self {
            ConnHeader::Close => b"Connection: close\r\n",
            ConnHeader::KeepAlive => b"Connection: Keep-Alive\r\n",
            ConnHeader::Default => b"",
        }
    }
}

/// Writes a complete error response into `g` (scratch segments). `location` is set for
/// redirects. Returns the body length (for `%b`).
pub fn error_page(
    g: &mut Gather,
    status: u16,
    conn: ConnHeader,
    head_only: bool,
    location: Option<&[u8]>,
) -> u64 {
    let reason = status_reason(status);
    let mut body = Vec::with_capacity(400);
    let _ = write!(
        body,
        "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>{status} {reason}</title>\n</head><body>\n<h1>{reason}</h1>\n"
    );
    match location {
        Some(loc) => {
            body.extend_from_slice(b"<p>The document has moved <a href=\"");
            body.extend_from_slice(loc);
            body.extend_from_slice(b"\">here</a>.</p>\n");
        }
        None => {
            let _ = writeln!(body, "<p>{}</p>", explanation(status));
        }
    }
    body.extend_from_slice(b"</body></html>\n");
    let start = g.scratch.len();
    let _ = write!(g.scratch, "HTTP/1.1 {status} {reason}\r\n");
    if let Some(loc) = location {
        g.scratch.extend_from_slice(b"Location: ");
        g.scratch.extend_from_slice(loc);
        g.scratch.extend_from_slice(b"\r\n");
    }
    let _ = write!(g.scratch, "Content-Length: {}\r\n", body.len());
    g.scratch.extend_from_slice(conn.field());
    g.scratch
        .extend_from_slice(b"Content-Type: text/html; charset=iso-8859-1\r\n\r\n");
    if !head_only {
        g.scratch.extend_from_slice(&body);
    }
    let end = g.scratch.len();
    g.push(crate::io::Src::Scratch, start, end);
    if head_only { 0 } else { body.len() as u64 }
}
