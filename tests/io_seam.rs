//! Regression tests for the two tokio-uring traps (shared/notes/io-uring.md 1.6), run on both
//! backends: (a) a read cut by its deadline must not swallow the bytes that arrive next;
//! (c) dropping a connection after a timed-out read must close the socket (peer sees EOF).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use ringproxy::io::{Backend, Conn, Epoll, Gather, Listener, Src, Uring};

fn timeout_then_reuse<B: Backend>() {
    let std_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_l.local_addr().unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    let got = B::block_on(async move {
        let l = B::listener(std_l).unwrap();
        let (conn, _) = l.accept().await.unwrap();
        let (r, buf) = conn
            .read(
                Vec::with_capacity(64),
                Instant::now() + Duration::from_millis(50),
            )
            .await;
        assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
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
        let (r, g) = conn
            .write_all(g, Instant::now() + Duration::from_secs(5))
            .await;
        r.unwrap();
        let mut echo = [0u8; 5];
        client.read_exact(&mut echo).unwrap();
        assert_eq!(&echo, b"HELLO");
        g.input
    });
    assert_eq!(&got[..], b"HELLO");
}

fn drop_after_timeout_closes<B: Backend>() {
    let std_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_l.local_addr().unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    B::block_on(async move {
        let l = B::listener(std_l).unwrap();
        let (conn, _) = l.accept().await.unwrap();
        let (r, _) = conn
            .read(
                Vec::with_capacity(64),
                Instant::now() + Duration::from_millis(30),
            )
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
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(!c.is_idle_alive());
    });
}

#[test]
fn uring_timeout_then_reuse() {
    timeout_then_reuse::<Uring>();
}
#[test]
fn epoll_timeout_then_reuse() {
    timeout_then_reuse::<Epoll>();
}
#[test]
fn uring_drop_after_timeout_closes() {
    drop_after_timeout_closes::<Uring>();
}
#[test]
fn epoll_drop_after_timeout_closes() {
    drop_after_timeout_closes::<Epoll>();
}
#[test]
fn uring_connect_and_liveness() {
    connect_deadline_and_liveness::<Uring>();
}
#[test]
fn epoll_connect_and_liveness() {
    connect_deadline_and_liveness::<Epoll>();
}
