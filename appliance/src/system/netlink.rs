//! The kernel's announcements over netlink (netlink(7), through netlink-sys), used as a
//! wake-up: [`Announcements`] joins a protocol's multicast groups and reports that
//! something was announced, without parsing what; [`watch`] keeps a value read from the
//! system current with them. The network's state follows rtnetlink's link, address and
//! route groups; the hardware inventory follows the kernel's and udev's device events
//! (`NETLINK_KOBJECT_UEVENT`).

use std::io;
use std::sync::Arc;
use std::time::Duration;

/// `NETLINK_ROUTE` (rtnetlink(7)): links, addresses, routes.
pub const ROUTE: isize = netlink_sys::protocols::NETLINK_ROUTE;
/// `NETLINK_KOBJECT_UEVENT`: a device added, removed or changed. Group 1 carries the
/// kernel's events, group 2 udev's (sent once its rules have run: device node
/// permissions and `/dev/v4l/by-id` links in place).
pub const KOBJECT_UEVENT: isize = netlink_sys::protocols::NETLINK_KOBJECT_UEVENT;

/// A netlink socket joined to multicast groups, read only to learn that something was
/// announced.
pub struct Announcements {
    socket: netlink_sys::TokioSocket,
    buf: Vec<u8>,
}

impl Announcements {
    /// Joins `groups` (a bit mask) of `protocol`. Needs a Tokio runtime.
    ///
    /// # Errors
    /// The I/O error of `socket(2)`/`bind(2)` (no `AF_NETLINK` in a sandbox, or a
    /// network namespace the kernel does not announce devices to).
    pub fn open(protocol: isize, groups: u32) -> io::Result<Announcements> {
        use netlink_sys::{AsyncSocket, SocketAddr, TokioSocket};
        let mut socket = TokioSocket::new(protocol)?;
        socket.socket_mut().bind(&SocketAddr::new(0, groups))?;
        Ok(Announcements {
            socket,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// Waits for the next announcement, then takes every one already queued, so a
    /// burst (an interface coming up with several addresses, a camera with its video,
    /// metadata and sound nodes) is one change.
    ///
    /// # Errors
    /// The I/O error of `recv(2)`; a queue that overflowed (`ENOBUFS`) is a change, not
    /// an error.
    pub async fn next(&mut self) -> io::Result<()> {
        use netlink_sys::AsyncSocketExt;
        self.buf.clear();
        match self.socket.recv(&mut self.buf).await {
            Err(e) if e.raw_os_error() != Some(ENOBUFS) => return Err(e),
            _ => {}
        }
        self.drain();
        Ok(())
    }

    /// Takes every announcement already queued, without waiting.
    pub fn drain(&mut self) {
        loop {
            self.buf.clear();
            match netlink_sys::AsyncSocket::socket_ref(&self.socket).recv(&mut self.buf, 0) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(ENOBUFS) => {}
                Err(_) => return,
            }
        }
    }
}

/// `ENOBUFS`: the socket's queue overflowed and announcements were lost.
const ENOBUFS: i32 = 105;

/// What [`watch`] follows, and how.
#[derive(Debug, Clone, Copy)]
pub struct Follow {
    /// What is read, for the log (`the network`, `the hardware`).
    pub what: &'static str,
    /// The netlink protocol ([`ROUTE`], [`KOBJECT_UEVENT`]).
    pub protocol: isize,
    /// Its multicast groups, a bit mask.
    pub groups: u32,
    /// How long after an announcement the value is read (announcements in that time
    /// are taken with it).
    pub settle: Duration,
    /// How often the value is read without an announcement: all there is where the
    /// socket cannot be opened.
    pub every: Duration,
}

/// A value `read` from the system, kept current by a task that reads it again at each
/// announcement ([`Follow`]) and at `every` besides, on a blocking thread. Receivers
/// see a change only when the value differs. A failed read keeps the last value. The
/// first value is read before this returns (the default when that fails); outside a
/// Tokio runtime it is never updated.
pub fn watch<T, F>(follow: Follow, read: F) -> tokio::sync::watch::Receiver<T>
where
    T: PartialEq + Default + Send + Sync + 'static,
    F: Fn() -> io::Result<T> + Send + Sync + 'static,
{
    let first = read().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "reading {} failed", follow.what);
        T::default()
    });
    let (tx, rx) = tokio::sync::watch::channel(first);
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return rx;
    };
    let read = Arc::new(read);
    rt.spawn(async move {
        let every = follow.every.as_secs();
        let mut announcements = match Announcements::open(follow.protocol, follow.groups) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(error = %e, "netlink announcements are not available; reading {} every {every} s", follow.what);
                None
            }
        };
        loop {
            let announced = async {
                match announcements.as_mut() {
                    Some(a) => a.next().await,
                    None => std::future::pending().await,
                }
            };
            let announced = tokio::select! {
                r = announced => Some(r),
                () = tokio::time::sleep(follow.every) => None,
                () = tx.closed() => return,
            };
            match (announced, announcements.as_mut()) {
                (Some(Err(e)), _) => {
                    tracing::warn!(error = %e, "reading netlink failed; reading {} every {every} s", follow.what);
                    announcements = None;
                }
                (Some(Ok(())), Some(a)) if !follow.settle.is_zero() => {
                    tokio::time::sleep(follow.settle).await;
                    a.drain();
                }
                _ => {}
            }
            let read = Arc::clone(&read);
            if let Ok(Ok(now)) = tokio::task::spawn_blocking(move || read()).await {
                tx.send_if_modified(|old| {
                    let changed = *old != now;
                    if changed {
                        *old = now;
                    }
                    changed
                });
            }
        }
    });
    rx
}
