//! `https://` targets: rustls over the I/O seam. tokio-uring has no AsyncRead/AsyncWrite
//! (shared/notes/io-uring.md 1.5), so this drives rustls's sans-I/O API by hand: ciphertext is
//! read and written with the socket's own deadline operations into buffers owned here, and
//! `read_tls`/`process_new_packets`/`reader()`/`writer()`/`write_tls` run over those buffers.
//!
//! One `ClientConfig` is built per run and shared by every thread, so reconnects resume their
//! sessions from its in-memory cache. Trust comes from the bundled Mozilla roots
//! (`webpki-roots`, the same on every machine); `--insecure` accepts any certificate but still
//! checks the handshake signatures.

use std::cell::RefCell;
use std::fmt;
use std::io::{self, BufRead, Write};
use std::sync::Arc;
use std::time::Instant;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore,
    SignatureScheme,
};

use crate::io::{self as seam, Conn, Deadlines, ExchangeError, Gather, Src};
use crate::load::engine::wire::Wire;

/// Ciphertext read per socket read: one full TLS record and then some.
const RX_BUF: usize = 32 * 1024;

/// The client configuration for a run: the ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`,
/// webpki roots, or no certificate check at all with `insecure`.
pub fn client_config(insecure: bool) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The name a target's certificate must carry: a DNS name (sent as SNI) or an IP address (no
/// SNI). `host` is as in `Target.host`, IPv6 literals in brackets.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(bare.to_string()).map_err(|_| format!("tls: bad server name {host:?}"))
}

/// `--insecure`: any certificate for any name, but the handshake signatures are still verified
/// with the provider's algorithms (the server must hold the key of the certificate it sent).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS failure carried inside an `io::Error` (kind Other, message "tls: ..."), so the engine
/// can name it: see [`error_kind`].
#[derive(Debug)]
pub struct TlsFailure(pub rustls::Error);

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tls: {}", self.0)
    }
}

impl std::error::Error for TlsFailure {}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::other(TlsFailure(e))
}

/// The short name of a TLS failure for the error tallies (`tls-cert-unknown-issuer`,
/// `tls-alert-handshake-failure`, ...), or None when `e` is not one.
pub fn error_kind(e: &io::Error) -> Option<String> {
    let TlsFailure(e) = e.get_ref()?.downcast_ref::<TlsFailure>()?;
    use rustls::Error as E;
    Some(match e {
        E::InvalidCertificate(c) => format!("tls-cert-{}", cert_kind(c)),
        E::AlertReceived(a) => format!("tls-alert-{}", kebab(&format!("{a:?}"))),
        E::NoCertificatesPresented => "tls-no-certificate".to_string(),
        E::PeerIncompatible(_) => "tls-incompatible".to_string(),
        E::PeerMisbehaved(_) => "tls-peer-misbehaved".to_string(),
        E::DecryptError => "tls-decrypt".to_string(),
        E::NoApplicationProtocol => "tls-no-alpn".to_string(),
        // The first bytes back were no TLS record: most likely a plain-HTTP port.
        E::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType
            | rustls::InvalidMessage::UnknownProtocolVersion,
        ) => "tls-not-a-tls-server".to_string(),
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => "tls-bad-message".to_string(),
        E::InappropriateHandshakeMessage { .. } => "tls-bad-handshake".to_string(),
        E::PeerSentOversizedRecord => "tls-oversized-record".to_string(),
        _ => "tls-error".to_string(),
    })
}

fn cert_kind(c: &CertificateError) -> &'static str {
    use CertificateError as C;
    match c {
        C::UnknownIssuer => "unknown-issuer",
        C::NotValidForName | C::NotValidForNameContext { .. } => "name-mismatch",
        C::Expired | C::ExpiredContext { .. } => "expired",
        C::NotValidYet | C::NotValidYetContext { .. } => "not-yet-valid",
        C::Revoked => "revoked",
        C::BadEncoding => "bad-encoding",
        C::BadSignature => "bad-signature",
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => "wrong-purpose",
        _ => "invalid",
    }
}

/// `HandshakeFailure` -> `handshake-failure`.
fn kebab(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, ch) in s.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(ch.to_ascii_lowercase());
        } else if ch.is_ascii_alphanumeric() {
            out.push(ch);
        }
    }
    out
}

/// A TLS client session over one socket. Implements `Wire`; the RefCell is never borrowed
/// across an `.await` (socket buffers are moved out of it for the operation and back).
pub struct TlsWire<C: Conn> {
    conn: C,
    st: RefCell<State>,
}

struct State {
    tls: ClientConnection,
    /// Ciphertext read from the socket; `rx[rx_pos..]` is not yet handed to rustls.
    rx: Vec<u8>,
    rx_pos: usize,
    /// Ciphertext to send, in `tx.scratch`; one segment covers it.
    tx: Gather,
    /// The socket reached end of stream.
    eof: bool,
}

impl<C: Conn> TlsWire<C> {
    /// Runs the handshake on `conn` until it completes (or fails, or `deadline` passes).
    pub async fn handshake(
        conn: C,
        name: ServerName<'static>,
        config: Arc<ClientConfig>,
        deadline: Instant,
    ) -> io::Result<TlsWire<C>> {
        let tls = ClientConnection::new(config, name).map_err(tls_error)?;
        let wire = TlsWire {
            conn,
            st: RefCell::new(State {
                tls,
                rx: Vec::with_capacity(RX_BUF),
                rx_pos: 0,
                tx: Gather::new(),
                eof: false,
            }),
        };
        loop {
            wire.flush(deadline).await?;
            let (handshaking, eof) = {
                let st = wire.st.borrow();
                (st.tls.is_handshaking(), st.eof)
            };
            if !handshaking {
                return Ok(wire);
            }
            if eof {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "tls: the server closed during the handshake",
                ));
            }
            wire.fill(deadline).await?;
            let absorbed = wire.st.borrow_mut().absorb();
            if let Err(e) = absorbed {
                // Best effort: the alert rustls queued tells the server why.
                let _ = wire.flush(deadline).await;
                return Err(e);
            }
        }
    }

    /// Sends every ciphertext byte rustls has queued.
    async fn flush(&self, deadline: Instant) -> io::Result<()> {
        loop {
            let mut tx = {
                let st = &mut *self.st.borrow_mut();
                if !st.tls.wants_write() {
                    return Ok(());
                }
                let mut tx = std::mem::take(&mut st.tx);
                tx.clear();
                while st.tls.wants_write() {
                    st.tls.write_tls(&mut tx.scratch)?;
                }
                let n = tx.scratch.len();
                tx.push(Src::Scratch, 0, n);
                tx
            };
            let r = Conn::write_all(&self.conn, &mut tx, deadline).await;
            self.st.borrow_mut().tx = tx;
            r?;
        }
    }

    /// One socket read of ciphertext into `rx` (only once rustls has taken all of it).
    async fn fill(&self, deadline: Instant) -> io::Result<()> {
        let rx = {
            let st = &mut *self.st.borrow_mut();
            if st.rx_pos < st.rx.len() {
                // rustls took none of the last read and has no plaintext for us: never spin.
                return Err(io::Error::other("tls: rustls accepts no more input"));
            }
            st.rx.clear();
            st.rx_pos = 0;
            if st.rx.capacity() < RX_BUF {
                st.rx.reserve(RX_BUF);
            }
            std::mem::take(&mut st.rx)
        };
        let (r, rx) = Conn::read(&self.conn, rx, deadline).await;
        let st = &mut *self.st.borrow_mut();
        st.rx = rx;
        if r? == 0 {
            st.eof = true;
            // An empty reader tells rustls about the end of stream.
            let _ = st.tls.read_tls(&mut &[][..]);
        }
        Ok(())
    }
}

impl State {
    /// Hands buffered ciphertext to rustls and decrypts it; stops early when rustls's
    /// plaintext buffer is full (the rest waits in `rx`).
    fn absorb(&mut self) -> io::Result<()> {
        while self.rx_pos < self.rx.len() {
            match self.tls.read_tls(&mut &self.rx[self.rx_pos..]) {
                Ok(0) => {
                    // close_notify seen: nothing more is read on this session.
                    self.rx_pos = self.rx.len();
                }
                Ok(n) => self.rx_pos += n,
                Err(e) if e.kind() == io::ErrorKind::Other => break, // plaintext buffer full
                Err(e) => return Err(e),
            }
            self.tls.process_new_packets().map_err(tls_error)?;
        }
        if self.rx_pos == self.rx.len() {
            self.rx.clear();
            self.rx_pos = 0;
        }
        self.tls.process_new_packets().map_err(tls_error)?;
        Ok(())
    }

    /// Moves decrypted bytes into `buf`'s spare capacity. Some(0) is the end of the session
    /// (close_notify, or the socket's end of stream: many servers skip close_notify, and HTTP
    /// framing catches truncation); None means more ciphertext is needed.
    fn plaintext(&mut self, buf: &mut Vec<u8>) -> Option<usize> {
        let spare = buf.capacity() - buf.len();
        let mut reader = self.tls.reader();
        match reader.fill_buf() {
            Ok([]) => Some(0),
            Ok(chunk) => {
                let n = chunk.len().min(spare);
                buf.extend_from_slice(&chunk[..n]);
                reader.consume(n);
                Some(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.eof.then_some(0),
            Err(_) => Some(0), // end of stream without close_notify
        }
    }
}

impl<C: Conn> Wire for TlsWire<C> {
    async fn read(&self, mut buf: Vec<u8>, deadline: Instant) -> (io::Result<usize>, Vec<u8>) {
        if buf.capacity() == buf.len() {
            buf.reserve(RX_BUF);
        }
        // Each pass either returns or reads the socket once; the deadline bounds the passes.
        loop {
            let r = {
                let st = &mut *self.st.borrow_mut();
                match st.absorb() {
                    Err(e) => Some(Err(e)),
                    Ok(()) => st.plaintext(&mut buf).map(Ok),
                }
            };
            if let Some(r) = r {
                return (r, buf);
            }
            // rustls may owe the server something (a key update, an alert) before more data.
            if let Err(e) = self.flush(deadline).await {
                return (Err(e), buf);
            }
            if let Err(e) = self.fill(deadline).await {
                return (Err(e), buf);
            }
        }
    }

    async fn write_all(&self, g: &mut Gather, deadline: Instant) -> io::Result<()> {
        self.send(g, deadline).await
    }

    /// One after the other: records are encrypted and read through rustls.
    async fn write_then_read(
        &self,
        g: &mut Gather,
        buf: &mut Vec<u8>,
        by: Deadlines,
    ) -> Result<usize, ExchangeError> {
        let write = async |g: &mut Gather| Wire::write_all(self, g, by.write).await;
        seam::write_then_read(write, async |b| Wire::read(self, b, by.read).await, g, buf).await
    }
}

impl<C: Conn> TlsWire<C> {
    /// Encrypts every segment of `g` and sends the records.
    async fn send(&self, g: &Gather, deadline: Instant) -> io::Result<()> {
        for mut seg in g.segments() {
            while !seg.is_empty() {
                let n = self.st.borrow_mut().tls.writer().write(seg)?;
                seg = &seg[n..];
                if !seg.is_empty() {
                    // rustls buffers a bounded amount of ciphertext: send it, then go on.
                    self.flush(deadline).await?;
                }
            }
        }
        self.flush(deadline).await
    }
}

/// A connection's wire: the plain socket for `http://`, TLS over it for `https://`.
pub enum MaybeTls<C: Conn> {
    Plain(C),
    Tls(Box<TlsWire<C>>),
}

impl<C: Conn> Wire for MaybeTls<C> {
    async fn read(&self, buf: Vec<u8>, deadline: Instant) -> (io::Result<usize>, Vec<u8>) {
        match self {
            MaybeTls::Plain(c) => Conn::read(c, buf, deadline).await,
            MaybeTls::Tls(t) => Wire::read(&**t, buf, deadline).await,
        }
    }

    async fn write_all(&self, g: &mut Gather, deadline: Instant) -> io::Result<()> {
        match self {
            MaybeTls::Plain(c) => Conn::write_all(c, g, deadline).await,
            MaybeTls::Tls(t) => Wire::write_all(&**t, g, deadline).await,
        }
    }

    async fn write_then_read(
        &self,
        g: &mut Gather,
        buf: &mut Vec<u8>,
        by: Deadlines,
    ) -> Result<usize, ExchangeError> {
        match self {
            MaybeTls::Plain(c) => Conn::write_then_read(c, g, buf, by).await,
            MaybeTls::Tls(t) => Wire::write_then_read(&**t, g, buf, by).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_strip_ipv6_brackets_and_keep_ips_out_of_sni() {
        assert!(matches!(
            server_name("[::1]").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("127.0.0.1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("example.com").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(server_name("bad name").is_err());
    }

    #[test]
    fn tls_failures_get_short_kinds() {
        let cert = tls_error(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        assert_eq!(
            error_kind(&cert).as_deref(),
            Some("tls-cert-unknown-issuer")
        );
        let alert = tls_error(rustls::Error::AlertReceived(
            rustls::AlertDescription::HandshakeFailure,
        ));
        assert_eq!(
            error_kind(&alert).as_deref(),
            Some("tls-alert-handshake-failure")
        );
        assert!(cert.to_string().starts_with("tls: "));
        assert_eq!(error_kind(&io::Error::other("plain")), None);
        assert_eq!(error_kind(&io::ErrorKind::TimedOut.into()), None);
    }

    #[test]
    fn configs_build_both_ways() {
        for insecure in [false, true] {
            let c = client_config(insecure).unwrap();
            assert_eq!(c.alpn_protocols, vec![b"http/1.1".to_vec()]);
        }
    }
}
