//! Regression tests for the two tokio-uring traps (shared/notes/io-uring.md 1.6), run on every
//! backend (io_uring on tokio-uring's driver and on our own loop, and epoll): (a) a read cut by its deadline must not swallow the bytes that arrive next;
//! (c) dropping a connection after a timed-out read must close the socket (peer sees EOF).
//! Deadlines are checked both near (io_uring: a timer per operation) and far enough away
//! (io_uring: the per-thread sweep, `COARSE_FROM` = 100 ms) for either path to cut the read.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use ringproxy::io::{
    Backend, Conn, Deadlines, Epoll, ExchangeError, Gather, Listener, Ring, Src, Uring,
};

/// A short deadline (a timer of its own) and a long one (the sweep on io_uring).
const DEADLINES: [Duration; 2] = [Duration::from_millis(50), Duration::from_millis(300)];

fn timeout_then_reuse<B: Backend>(timeout: Duration) {
    let std_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_l.local_addr().unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    let got = B::block_on(async move {
        let l = B::listener(std_l).unwrap();
        let (conn, _) = l.accept().await.unwrap();
        let began = Instant::now();
        let (r, buf) = conn.read(Vec::with_capacity(64), began + timeout).await;
        assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
        let took = began.elapsed();
        assert!(
            took >= timeout && took < timeout + Duration::from_millis(500),
            "a {timeout:?} deadline cut the read after {took:?}"
        );
        assert!(buf.is_empty());
        client.write_all(b"HELLO").unwrap();
        let (r, buf) = conn
            .read(buf, Instant::now() + Duration::from_secs(5))
            .await;
        assert_eq!(r.unwrap(), 5);
        // And a write after the timeout still works on the same connection.
        let mut g = Gather::new();
        g.input = buf;
        g.push(Src::Input, 0, 5);
        conn.write_all(&mut g, Instant::now() + Duration::from_secs(5))
            .await
            .unwrap();
        let mut echo = [0u8; 5];
        client.read_exact(&mut echo).unwrap();
        assert_eq!(&echo, b"HELLO");
        g.input
    });
    assert_eq!(&got[..], b"HELLO");
}

fn drop_after_timeout_closes<B: Backend>(timeout: Duration) {
    let std_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_l.local_addr().unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    B::block_on(async move {
        let l = B::listener(std_l).unwrap();
        let (conn, _) = l.accept().await.unwrap();
        let (r, _) = conn
            .read(Vec::with_capacity(64), Instant::now() + timeout)
            .await;
        assert!(r.is_err());
        drop(conn);
    });
    client
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut b = [0u8; 8];
    assert_eq!(
        client.read(&mut b).unwrap(),
        0,
        "peer must see EOF once the conn is dropped"
    );
}

fn connect_deadline_and_liveness<B: Backend>() {
    let std_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_l.local_addr().unwrap();
    B::block_on(async move {
        let c = B::connect(addr, Instant::now() + Duration::from_secs(2))
            .await
            .unwrap();
        let (server_side, _) = std_l.accept().unwrap();
        assert!(c.is_idle_alive());
        drop(server_side);
        // The FIN is visible to a peek without consuming anything.
        let until = Instant::now() + Duration::from_secs(2);
        while c.is_idle_alive() && Instant::now() < until {
            B::pause_until(Instant::now() + Duration::from_millis(5)).await;
        }
        assert!(!c.is_idle_alive());
    });
}

/// `write_then_read` (on io_uring with our own loop: one linked send, or sendmsg for several
/// segments, and receive): the request arrives and the answer comes back; a read cut by its deadline loses nothing and leaves the
/// connection usable; a write to a reset peer is reported as the write's failure.
fn write_then_read<B: Backend>() {
    let std_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_l.local_addr().unwrap();
    let (connected, reset_now) = std::sync::mpsc::channel();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = std_l.accept().unwrap();
        let mut req = [0u8; 4];
        s.read_exact(&mut req).unwrap();
        assert_eq!(&req, b"PING");
        s.write_all(b"PONG").unwrap();
        s.read_exact(&mut req).unwrap(); // the second request: answered only after a pause
        std::thread::sleep(Duration::from_millis(300));
        s.write_all(b"LATE").unwrap();
        let (s2, _) = std_l.accept().unwrap();
        reset_now.recv().unwrap();
        socket2::SockRef::from(&s2)
            .set_linger(Some(Duration::ZERO))
            .unwrap(); // a reset
        drop(s2);
    });
    // "PING" in one segment, or in two (a sendmsg when linked).
    let request = |buf: Vec<u8>, split: bool| {
        let mut g = Gather::new();
        g.input = buf;
        g.input.clear();
        g.input.extend_from_slice(b"PING");
        if split {
            g.push(Src::Input, 0, 2);
            g.push_scratch(b"NG");
        } else {
            g.push(Src::Input, 0, 4);
        }
        g
    };
    B::block_on(async move {
        let far = || Deadlines {
            write: Instant::now() + Duration::from_secs(5),
            read: Instant::now() + Duration::from_secs(5),
        };
        let c = B::connect(addr, Instant::now() + Duration::from_secs(2))
            .await
            .unwrap();
        let (mut g, mut buf) = (request(Vec::new(), true), Vec::with_capacity(64));
        let r = c.write_then_read(&mut g, &mut buf, far()).await;
        assert_eq!(r.unwrap(), 4);
        assert_eq!(&buf[..], b"PONG");
        let short = Deadlines {
            read: Instant::now() + Duration::from_millis(100),
            ..far()
        };
        let (mut g, mut buf) = (request(g.input, false), Vec::new());
        let r = c.write_then_read(&mut g, &mut buf, short).await;
        match r {
            Err(ExchangeError::Read(e)) => assert_eq!(e.kind(), std::io::ErrorKind::TimedOut),
            other => panic!("wanted a read timeout, got {other:?}"),
        }
        let (r, buf) = c.read(buf, far().read).await;
        assert_eq!(r.unwrap(), 4);
        assert_eq!(&buf[..], b"LATE", "nothing lost to the timeout");
        let reset = B::connect(addr, Instant::now() + Duration::from_secs(2))
            .await
            .unwrap();
        connected.send(()).unwrap();
        // Wait until the reset has arrived, then write into it.
        let until = Instant::now() + Duration::from_secs(2);
        while reset.is_idle_alive() && Instant::now() < until {
            B::pause_until(Instant::now() + Duration::from_millis(5)).await;
        }
        let (mut g, mut buf) = (request(g.input, true), Vec::with_capacity(64));
        let r = reset.write_then_read(&mut g, &mut buf, far()).await;
        assert!(
            matches!(r, Err(ExchangeError::Write(_))),
            "wanted a write error, got {r:?}"
        );
        assert_eq!(
            &g.input[..],
            b"PING",
            "the buffers come back after a failed write"
        );
    });
    peer.join().unwrap();
}

/// The sweep's state is per thread and outlives a runtime: a second runtime on the same
/// thread (one runtime was dropped with deadlines still watched) must get a sweeper of its own.
/// On our own loop this also ends a runtime with a read in flight, which must be cancelled and
/// reaped before the ring closes.
fn runtimes_in_a_row<B: Backend>() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..2 {
            long_deadline_with_one_left_watched::<B>();
        }
        done.send(()).unwrap();
    });
    // Bounded: without a sweeper the second read would never time out.
    finished
        .recv_timeout(Duration::from_secs(10))
        .expect("a long deadline in the second runtime never fired");
}

fn long_deadline_with_one_left_watched<B: Backend>() {
    let std_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_l.local_addr().unwrap();
    let _client = TcpStream::connect(addr).unwrap();
    let _idle = TcpStream::connect(addr).unwrap();
    B::block_on(async move {
        let l = B::listener(std_l).unwrap();
        let (conn, _) = l.accept().await.unwrap();
        let (idle, _) = l.accept().await.unwrap();
        // Still watched when the runtime ends.
        B::spawn(async move {
            let _ = idle
                .read(
                    Vec::with_capacity(8),
                    Instant::now() + Duration::from_secs(60),
                )
                .await;
        });
        let (r, _) = conn
            .read(Vec::with_capacity(8), Instant::now() + DEADLINES[1])
            .await;
        assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    });
}

fn timeouts_then_reuse<B: Backend>() {
    DEADLINES.into_iter().for_each(timeout_then_reuse::<B>);
}

fn drops_after_timeout_close<B: Backend>() {
    DEADLINES
        .into_iter()
        .for_each(drop_after_timeout_closes::<B>);
}

/// A module per check, with a test per backend in it (`write_then_read::ring`, ...).
macro_rules! on_each_backend {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            use super::*;
            #[test]
            fn uring() {
                $check::<Uring>();
            }
            #[test]
            fn ring() {
                $check::<Ring>();
            }
            #[test]
            fn epoll() {
                $check::<Epoll>();
            }
        }
    )*};
}

on_each_backend!(
    write_then_read,
    timeouts_then_reuse,
    drops_after_timeout_close,
    runtimes_in_a_row,
    connect_deadline_and_liveness,
);
