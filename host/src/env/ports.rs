//! Port blocks: each session gets `block` consecutive ports, unique among the host's
//! sessions (those in the registry and those being created) and free when handed out.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
use std::sync::Mutex;

use super::EnvError;

/// First ports of blocks handed out to sessions not yet in the registry. Held only for
/// a quick scan, never across an await; creations run on the blocking pool.
static CLAIMED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A block handed out to a session being created; it stops counting when dropped, by
/// which time the session's record (which holds the block) is in the registry.
#[derive(Debug)]
pub struct Claim {
    first: u16,
    pub ports: [u16; 2],
}

impl Drop for Claim {
    fn drop(&mut self) {
        CLAIMED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.first);
    }
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
            .chain(claimed.iter().map(|&f| [f, f.saturating_add(size - 1)]))
            .any(|[a, b]| u32::from(a) <= last && first <= u32::from(b));
        if !taken && (first..=last).all(|p| is_free(p as u16)) {
            let first = first as u16;
            claimed.insert(first);
            return Ok(Claim {
                first,
                ports: [first, last as u16],
            });
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
        assert_eq!(d.ports, first, "a released block is handed out again");
    }
}
