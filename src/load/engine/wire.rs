//! The byte stream a connection's requests and responses travel on: the plain socket, or TLS
//! over it. This is the one place where TLS wraps the socket; `conn.rs` only sees `Wire`.

use std::io;
use std::time::Instant;

use crate::io::{Conn, Deadlines, ExchangeError, Gather};

#[allow(async_fn_in_trait)] // generator threads are single-threaded by design
pub trait Wire {
    /// As `io::Conn::read`: appends to `buf`; Ok(0) is end of stream.
    async fn read(&self, buf: Vec<u8>, deadline: Instant) -> (io::Result<usize>, Vec<u8>);
    /// As `io::Conn::write_all`.
    async fn write_all(&self, g: &mut Gather, deadline: Instant) -> io::Result<()>;
    /// As `io::Conn::write_then_read`.
    async fn write_then_read(
        &self,
        g: &mut Gather,
        buf: &mut Vec<u8>,
        by: Deadlines,
    ) -> Result<usize, ExchangeError>;
}

impl<C: Conn> Wire for C {
    async fn read(&self, buf: Vec<u8>, deadline: Instant) -> (io::Result<usize>, Vec<u8>) {
        Conn::read(self, buf, deadline).await
    }

    async fn write_all(&self, g: &mut Gather, deadline: Instant) -> io::Result<()> {
        Conn::write_all(self, g, deadline).await
    }

    async fn write_then_read(
        &self,
        g: &mut Gather,
        buf: &mut Vec<u8>,
        by: Deadlines,
    ) -> Result<usize, ExchangeError> {
        Conn::write_then_read(self, g, buf, by).await
    }
}
