//! The one socket option the ingest sets itself: `SO_RCVLOWAT` (see [`super::batching`]);
//! public so that the record bench's floor batches its reads the same way.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Sets the socket's receive low-water mark (`SO_RCVLOWAT`, socket(7)): `epoll` reports
/// the socket readable only once `bytes` are queued (or on end of stream / error), so the
/// reader wakes once per batch instead of once per few packets. `1` is the default.
///
/// Neither `std`, `socket2` nor `rustix` wraps this option, hence the raw call; a
/// benchmark shows it pays (docs/benchmarks.md, "record").
#[allow(unsafe_code)]
pub fn set_recv_low_water(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fd` is an open descriptor for the whole borrow, and the option value is a
    // live `c_int` whose exact size is passed; setsockopt only reads it. On a descriptor
    // that is not a socket, or an option the kernel refuses, the call fails with an
    // error code and changes nothing.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            std::ptr::from_ref(&value).cast::<libc::c_void>(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    #[tokio::test]
    async fn the_reader_wakes_only_once_the_mark_is_reached_and_again_when_it_drops() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut tx = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut rx, _) = listener.accept().await.unwrap();
        set_recv_low_water(rx.as_fd(), 10_000).unwrap();
        // tokio takes a fresh socket as readable until a read would block, as a reader
        // in steady state has just seen.
        let fresh = rx.try_read(&mut [0; 1]).unwrap_err();
        assert_eq!(fresh.kind(), std::io::ErrorKind::WouldBlock);

        tx.write_all(&[1; 4_000]).await.unwrap();
        let early = tokio::time::timeout(Duration::from_millis(200), rx.readable()).await;
        assert!(early.is_err(), "readable with 4 000 of 10 000 bytes queued");

        tx.write_all(&[2; 6_000]).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), rx.readable())
            .await
            .expect("not readable with the mark reached")
            .unwrap();
        let mut buf = vec![0; 10_000];
        rx.read_exact(&mut buf).await.unwrap();
        // Drained: tokio forgets the readiness only when a read would block.
        let drained = rx.try_read(&mut [0; 1]).unwrap_err();
        assert_eq!(drained.kind(), std::io::ErrorKind::WouldBlock);

        // Bytes below the mark are readable as soon as the mark drops back to 1.
        tx.write_all(&[3; 100]).await.unwrap();
        let early = tokio::time::timeout(Duration::from_millis(200), rx.readable()).await;
        assert!(early.is_err(), "readable with 100 of 10 000 bytes queued");
        set_recv_low_water(rx.as_fd(), 1).unwrap();
        tokio::time::timeout(Duration::from_secs(5), rx.readable())
            .await
            .expect("not readable after the mark dropped")
            .unwrap();
        let mut buf = [0; 100];
        rx.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, [3; 100]);
    }

    #[test]
    fn a_descriptor_that_is_not_a_socket_is_an_error_not_a_crash() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let err = set_recv_low_water(file.as_fd(), 4096).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTSOCK));
    }
}
