//! Real sockets that make real resets, each inside a test namespace. Every
//! wait is bounded; nothing is sent outside the test's namespaces.

pub mod flood;
pub mod frames;

use std::{
    io::{ErrorKind, Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    time::Duration,
};

use socket2::{Domain, Socket, Type};

use crate::namespaces::netns::Netns;

const TIMEOUT: Duration = Duration::from_secs(3);

fn socket_for(addr: SocketAddr) -> Socket {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None).expect("socket");
    s.set_reuse_address(true).expect("SO_REUSEADDR");
    s
}

#[must_use]
pub fn listen(ns: &Netns, addr: SocketAddr) -> TcpListener {
    ns.run(|| {
        let s = socket_for(addr);
        s.bind(&addr.into()).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        s.listen(16).expect("listen");
        s.into()
    })
}

/// connect() from `local` (a fixed port, so tests know it) to `remote`, in `ns`.
pub fn connect(ns: &Netns, local: SocketAddr, remote: SocketAddr) -> std::io::Result<TcpStream> {
    ns.run(|| {
        let s = socket_for(local);
        s.bind(&local.into())?;
        s.connect_timeout(&remote.into(), TIMEOUT)?;
        let stream: TcpStream = s.into();
        stream.set_read_timeout(Some(TIMEOUT))?;
        Ok(stream)
    })
}

/// Seed scenario 1: a SYN to a port nobody listens on is refused.
pub fn syn_to_closed_port(ns: &Netns, local: SocketAddr, remote: SocketAddr) {
    let err = connect(ns, local, remote).expect_err("connect to a closed port must fail");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
}

/// An established connection: (client in `a`, accepted socket in `b`, listener).
#[must_use]
pub fn establish(a: &Netns, b: &Netns, client: SocketAddr, server: SocketAddr) -> (TcpStream, TcpStream, TcpListener) {
    let listener = listen(b, server);
    let c = connect(a, client, server).expect("connect");
    let (s, _) = listener.accept().expect("accept");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    (c, s, listener)
}

/// Seed scenario 2: close() with SO_LINGER {1, 0} sends a RST instead of a FIN.
pub fn close_with_linger_zero(s: TcpStream) {
    Socket::from(s).set_linger(Some(Duration::ZERO)).expect("SO_LINGER");
}

/// SO_LINGER {1, 0} on a socket that stays open.
pub fn set_linger_zero(s: &TcpStream) {
    socket2::SockRef::from(s).set_linger(Some(Duration::ZERO)).expect("SO_LINGER");
}

/// connect(AF_UNSPEC): the kernel disconnects the socket (tcp_disconnect), with a RST.
pub fn disconnect(s: &TcpStream) {
    // SAFETY: a zeroed sockaddr with family AF_UNSPEC, its own size.
    let rc = unsafe {
        let mut sa: libc::sockaddr = std::mem::zeroed();
        sa.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
        libc::connect(s.as_raw_fd(), &raw const sa, size_of::<libc::sockaddr>() as libc::socklen_t)
    };
    assert_eq!(rc, 0, "connect(AF_UNSPEC): {}", std::io::Error::last_os_error());
}

/// Makes a socket disappear without a FIN or RST, as if its host had crashed:
/// TCP_REPAIR mode, then close().
pub fn vanish(s: TcpStream) {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt with a valid int option.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_REPAIR,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as u32,
        )
    };
    assert_eq!(rc, 0, "TCP_REPAIR: {}", std::io::Error::last_os_error());
    drop(s);
}

/// Reads once and expects the peer's reset (ECONNRESET).
pub fn expect_reset(mut s: TcpStream) {
    let mut buf = [0u8; 64];
    let r = s.read(&mut buf);
    assert!(matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionReset), "expected ECONNRESET, got {r:?}");
}

/// Sends `count` hand-made TCP segments from `a` over `va` on the tuple
/// 10.77.0.1:`sport` -> 10.77.0.2:`dport`, with `flags` and data offset `doff`
/// (words; below 5 is malformed). Returns how many left.
#[must_use]
pub fn inject(pair: &crate::namespaces::netns::Pair, sport: u16, dport: u16, flags: u8, doff: u8, count: usize) -> u64 {
    inject_segment(
        pair,
        &crate::traffic::frames::Tcp { sport, dport, seq: 0x1234_5678, flags, doff, payload: Vec::new() },
        count,
    )
}

/// Sends `count` copies of segment `tcp` from `a` over `va`, 10.77.0.1 -> 10.77.0.2. Returns how many left.
#[must_use]
pub fn inject_segment(pair: &crate::namespaces::netns::Pair, tcp: &crate::traffic::frames::Tcp, count: usize) -> u64 {
    use std::net::Ipv4Addr;
    let (ifindex, src_mac) = pair.a.link_info(crate::namespaces::netns::VA);
    let (_, dst_mac) = pair.b.link_info(crate::namespaces::netns::VB);
    let frames = vec![crate::traffic::flood::frame(
        src_mac,
        dst_mac,
        Ipv4Addr::new(10, 77, 0, 1),
        Ipv4Addr::new(10, 77, 0, 2),
        tcp,
    )];
    pair.a.run(|| crate::traffic::flood::flood_count(&crate::traffic::flood::socket(ifindex), &frames, count))
}

/// An RST from a user's raw TCP socket (`socket(AF_INET, SOCK_RAW,
/// IPPROTO_TCP)`, the kernel adds the IP header) in `ns`, `sport` -> `to`:
/// a reset the TCP stack did not make. Checksum zero: the peer drops it.
pub fn raw_socket_rst(ns: &Netns, sport: u16, to: std::net::SocketAddrV4) {
    let tcp = frames::Tcp::new(sport, to.port(), 0x1234_5678, frames::RST | frames::ACK).bytes();
    ns.run(|| {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(socket2::Protocol::TCP)).expect("raw TCP socket");
        let sent = s.send_to(&tcp, &SocketAddr::V4(std::net::SocketAddrV4::new(*to.ip(), 0)).into()).expect("send");
        assert_eq!(sent, tcp.len());
    });
}

/// setsockopt(IPPROTO_TCP, `name`, `value`).
pub fn tcp_opt(s: &TcpStream, name: libc::c_int, value: libc::c_int) {
    // SAFETY: setsockopt with a valid int option.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as u32,
        )
    };
    assert_eq!(rc, 0, "setsockopt({name}): {}", std::io::Error::last_os_error());
}

fn tcp_get(s: &TcpStream, name: libc::c_int) -> u32 {
    let mut v: u32 = 0;
    let mut len = size_of::<u32>() as libc::socklen_t;
    // SAFETY: getsockopt into a u32 of its own size.
    let rc = unsafe { libc::getsockopt(s.as_raw_fd(), libc::IPPROTO_TCP, name, (&raw mut v).cast(), &raw mut len) };
    assert_eq!(rc, 0, "getsockopt({name}): {}", std::io::Error::last_os_error());
    v
}

/// (next sequence number, current TCP timestamp value) of an idle connected
/// socket, read through TCP_REPAIR (left again without a window probe).
#[must_use]
pub fn seq_and_tsval(s: &TcpStream) -> (u32, u32) {
    const TCP_SEND_QUEUE: libc::c_int = 2;
    const TCP_REPAIR_OFF_NO_WP: libc::c_int = -1;
    tcp_opt(s, libc::TCP_REPAIR, 1);
    tcp_opt(s, libc::TCP_REPAIR_QUEUE, TCP_SEND_QUEUE);
    let seq = tcp_get(s, libc::TCP_QUEUE_SEQ);
    tcp_opt(s, libc::TCP_REPAIR, TCP_REPAIR_OFF_NO_WP);
    (seq, tcp_get(s, libc::TCP_TIMESTAMP))
}

/// The connection still carries data from `from` to `to`.
pub fn assert_connected(from: &mut TcpStream, to: &mut TcpStream) {
    from.write_all(b"still here").expect("write");
    let mut buf = [0u8; 10];
    to.read_exact(&mut buf).expect("read");
    assert_eq!(&buf, b"still here");
}

/// Sends `data` and waits until the peer's socket has it queued (unread).
pub fn send_and_wait_queued(from: &mut TcpStream, to: &TcpStream, data: &[u8]) {
    from.write_all(data).expect("write");
    let mut buf = vec![0u8; data.len()];
    to.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    // MSG_PEEK leaves the data unread.
    let n = to.peek(&mut buf).expect("peek");
    assert!(n > 0, "data did not arrive");
}

/// The socket's TCP state (`tcpi_state` of TCP_INFO: 1 ESTABLISHED, 5 FIN_WAIT2, ...).
#[must_use]
pub fn tcp_state(s: &TcpStream) -> u8 {
    let mut info = [0u8; 256];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: getsockopt into a buffer of its own size.
    let rc = unsafe {
        libc::getsockopt(s.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_INFO, info.as_mut_ptr().cast(), &raw mut len)
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    info[0]
}

/// Waits (at most 10 s) until `s` is in TCP state `state`.
pub fn wait_state(s: &TcpStream, state: u8) {
    crate::wait::until_true(&format!("TCP state {state}"), Duration::from_secs(10), || tcp_state(s) == state);
}

/// Keepalive probes after one idle second, one second apart, one unanswered probe ends the connection.
pub fn keepalive_fast(s: &TcpStream) {
    socket2::SockRef::from(s).set_keepalive(true).expect("SO_KEEPALIVE");
    tcp_opt(s, libc::TCP_KEEPIDLE, 1);
    tcp_opt(s, libc::TCP_KEEPINTVL, 1);
    tcp_opt(s, libc::TCP_KEEPCNT, 1);
}

/// Writes until the send buffer is full (the peer reads nothing), so data
/// stays unsent; at most 64 MiB.
pub fn fill_send_buffer(s: &mut TcpStream) {
    s.set_nonblocking(true).expect("non-blocking");
    let chunk = vec![0u8; 65536];
    for _ in 0..1024 {
        match s.write(&chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("write: {e}"),
        }
    }
    s.set_nonblocking(false).expect("blocking");
}
