//! Signatures already seen inside the acceptance window, so a captured
//! signed request cannot be replayed. Entries expire with the window.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::Millis;

#[derive(Default)]
pub struct ReplayCache {
    seen: Mutex<HashMap<Vec<u8>, Millis>>,
}

impl ReplayCache {
    /// Records `signature` until `expires_at`; `false` if it was already there.
    pub fn first_use(&self, signature: &[u8], now: Millis, expires_at: Millis) -> bool {
        let mut g = match self.seen.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.len() > 10_000 {
            g.retain(|_, exp| *exp > now);
        }
        match g.get(signature) {
            Some(exp) if *exp > now => false,
            _ => {
                g.insert(signature.to_vec(), expires_at);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_use_inside_window_is_refused() {
        let c = ReplayCache::default();
        assert!(c.first_use(b"sig", 0, 100));
        assert!(!c.first_use(b"sig", 50, 150));
        assert!(c.first_use(b"sig", 100, 200));
    }
}
