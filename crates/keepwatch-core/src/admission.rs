//! Connections that have not logged in yet: a bounded number in all and per source address,
//! each for at most the login grace time. A stranger can make the gateway hold no more.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::metrics::{METRICS, Refused};

/// The pre-login slots of one gateway.
#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    max_per_address: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// A connection's pre-login slot, given back when it logs in or goes away. Behind a
/// balancer it is taken in two steps: in all at accept, for the client's address once the
/// PROXY header names it.
#[derive(Debug)]
pub struct Slot {
    admission: Arc<Admission>,
    address: Option<IpAddr>,
}

/// Why a connection was turned away before its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Total(usize),
    Address(usize),
}

impl Admission {
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Admission { max_total, max_per_address, held: Mutex::default() })
    }

    /// A slot for a new connection from `address`, if one is free.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Slot, Full> {
        self.admit_unaddressed()?.for_address(address)
    }

    /// A slot counted in all only, for a connection whose client is not known yet.
    pub fn admit_unaddressed(self: &Arc<Self>) -> Result<Slot, Full> {
        let mut h = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if h.total >= self.max_total {
            METRICS.refused(Refused::Admission);
            return Err(Full::Total(self.max_total));
        }
        h.total += 1;
        Ok(Slot { admission: self.clone(), address: None })
    }

    /// Connections holding a slot now.
    pub fn held(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Slot {
    /// Counts the slot for `address` too, if that address has room.
    pub fn for_address(mut self, address: IpAddr) -> Result<Slot, Full> {
        let a = self.admission.clone();
        let mut h = a.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = h.by_address.entry(address).or_default();
        if *n >= a.max_per_address {
            // `self` drops after the lock is released and gives its total back.
            drop(h);
            METRICS.refused(Refused::Admission);
            return Err(Full::Address(a.max_per_address));
        }
        *n += 1;
        self.address = Some(address);
        Ok(self)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut h = self.admission.held.lock().unwrap_or_else(|e| e.into_inner());
        h.total -= 1;
        if let Some(address) = self.address
            && let Some(n) = h.by_address.get_mut(&address)
        {
            *n -= 1;
            if *n == 0 {
                h.by_address.remove(&address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_in_all_and_per_address_and_come_back() {
        let a = Admission::new(3, 2);
        let x = IpAddr::from([10, 0, 0, 1]);
        let y = IpAddr::from([10, 0, 0, 2]);
        let s1 = a.admit(x).unwrap();
        let _s2 = a.admit(x).unwrap();
        assert_eq!(a.admit(x).unwrap_err(), Full::Address(2));
        let _s3 = a.admit(y).unwrap();
        assert_eq!(a.admit(y).unwrap_err(), Full::Total(3));
        drop(s1);
        assert_eq!(a.held(), 2);
        assert!(a.admit(y).is_ok());
    }
}
