//! Port blocks: each session gets `block` consecutive ports, unique among the host's
//! sessions (those in the registry and those being created) and free when handed out.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
use std::sync::Mutex;

use super::EnvError;

/// Blocks (first → last) this host handed out, until `rm` releases them. A creation
/// reads the registry's blocks before it claims, so a session inserted meanwhile is
/// seen here, not there. Held only for a quick scan, never across an await; creations
/// run on the blocking pool.
static CLAIMED: Mutex<BTreeMap<u16, u16>> = Mutex::new(BTreeMap::new());

/// A block handed out to a session being created: given back when dropped (creation
/// failed) unless [`Claim::keep`] made it the session's.
#[derive(Debug)]
pub struct Claim {
    kept: bool,
    pub ports: [u16; 2],
}

impl Claim {
    /// The session's record holds the block now; `rm` releases it.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.kept {
            release(self.ports);
        }
    }
}

/// Give a removed session's block back.
pub fn release(ports: [u16; 2]) {
    CLAIMED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&ports[0]);
}

/// The first free block of `size` ports at or above `base` that overlaps none of
/// `used` (the blocks of the registry's sessions).
pub fn claim(used: &[[u16; 2]], size: u16, base: u16) -> Result<Claim, EnvError> {
    let size = size.max(1);
    let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
    let mut first = u32::from(base.max(1024));
    while first + u32::from(size) - 1 <= u32::from(u16::MAX) {
        let last = first + u32::from(size) - 1;
        let taken = used
            .iter()
            .copied()
            .chain(claimed.iter().map(|(&f, &l)| [f, l]))
            .any(|[a, b]| u32::from(a) <= last && first <= u32::from(b));
        if !taken && (first..=last).all(|p| is_free(p as u16)) {
            let ports = [first as u16, last as u16];
            claimed.insert(ports[0], ports[1]);
            return Ok(Claim { kept: false, ports });
        }
        first += u32::from(size);
    }
    Err(EnvError::NoPorts { size, base })
}

/// Nothing listens on the port, on any IPv4 or IPv6 address.
fn is_free(port: u16) -> bool {
    let v4 = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok();
    // A host without IPv6 has nothing listening there either.
    let v6 = match TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::AddrNotAvailable,
    };
    v4 && v6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_disjoint_and_skip_busy_ports() {
        let busy = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = busy.local_addr().expect("addr").port();
        let base = port.saturating_sub(2).max(1024);
        let a = claim(&[], 5, base).expect("a");
        let b = claim(&[a.ports], 5, base).expect("b");
        let c = claim(&[], 5, base).expect("c: a is still claimed");
        for x in [&a, &b, &c] {
            assert!(!(x.ports[0]..=x.ports[1]).contains(&port), "{x:?}");
        }
        let mut all = vec![a.ports, b.ports, c.ports];
        all.sort();
        assert!(all.windows(2).all(|w| w[0][1] < w[1][0]), "{all:?}");
        let first = a.ports;
        drop(a);
        let d = claim(&[b.ports, c.ports], 5, base).expect("d");
        assert_eq!(d.ports, first, "a dropped claim is handed out again");
        // Kept blocks count until released, whether or not the caller lists them.
        let d_ports = d.ports;
        d.keep();
        let e = claim(&[], 5, base).expect("e");
        assert_ne!(e.ports, d_ports);
        release(d_ports);
        for x in [b, c, e] {
            release(x.ports);
        }
        assert_eq!(claim(&[], 5, base).expect("f").ports, first);
    }
}
