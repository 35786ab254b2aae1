//! UDP transport: a server RTP/RTCP socket pair per session, and the RTCP reader.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::conn::Event;

/// A session's server-side sockets.
pub(crate) struct UdpPair {
    pub rtp: Arc<UdpSocket>,
    pub rtcp: Arc<UdpSocket>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for UdpPair {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl UdpPair {
    /// Binds an RTP/RTCP pair on `local` (even RTP port when possible, RFC 3550 §11) and
    /// starts a task reading RTCP from `peer`, reported as [`Event::Udp`] for `session`.
    pub fn bind(
        local: IpAddr,
        peer: IpAddr,
        session: String,
        events: mpsc::Sender<Event>,
    ) -> std::io::Result<Self> {
        let (rtp, rtcp) = bind_pair(local)?;
        let rtp = Arc::new(UdpSocket::from_std(rtp)?);
        let rtcp = Arc::new(UdpSocket::from_std(rtcp)?);
        let reader = tokio::spawn(read_rtcp(rtp.clone(), rtcp.clone(), peer, session, events));
        Ok(UdpPair { rtp, rtcp, reader })
    }

    /// The (RTP, RTCP) ports.
    pub fn ports(&self) -> (u16, u16) {
        let p = |s: &UdpSocket| s.local_addr().map(|a| a.port()).unwrap_or(0);
        (p(&self.rtp), p(&self.rtcp))
    }
}

fn bind_pair(local: IpAddr) -> std::io::Result<(std::net::UdpSocket, std::net::UdpSocket)> {
    let bind = |port: u16| -> std::io::Result<std::net::UdpSocket> {
        let s = std::net::UdpSocket::bind(SocketAddr::new(local, port))?;
        s.set_nonblocking(true)?;
        Ok(s)
    };
    for _ in 0..8 {
        let rtp = bind(0)?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = bind(port + 1) {
            return Ok((rtp, rtcp));
        }
    }
    // No adjacent pair: any two ports work, since the reply names both.
    Ok((bind(0)?, bind(0)?))
}

/// Reads datagrams on both sockets; those from the client's address refresh the session
/// (RTCP receiver reports, or the dummy packets clients send to open NATs).
async fn read_rtcp(
    rtp: Arc<UdpSocket>,
    rtcp: Arc<UdpSocket>,
    peer: IpAddr,
    session: String,
    events: mpsc::Sender<Event>,
) {
    let mut a = vec![0u8; 2048];
    let mut b = vec![0u8; 2048];
    loop {
        let (n, from, is_rtcp) = tokio::select! {
            r = rtp.recv_from(&mut a) => match r { Ok((n, f)) => (n, f, false), Err(_) => continue },
            r = rtcp.recv_from(&mut b) => match r { Ok((n, f)) => (n, f, true), Err(_) => continue },
        };
        if from.ip() != peer {
            continue; // Only the RTSP peer may keep its session alive.
        }
        let rtcp = is_rtcp.then(|| b.get(..n).unwrap_or_default().to_vec());
        // Never block on a busy connection: a dropped liveness notice is harmless.
        if events
            .try_send(Event::Udp {
                session: session.clone(),
                rtcp,
            })
            .is_err()
            && events.is_closed()
        {
            return;
        }
    }
}
