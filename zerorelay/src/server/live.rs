//! The settings a reload changes on live connections: `[limits]` that are
//! checked per frame, `[features]`, the authenticator built from `[auth]`
//! (keys, tokens, the callback) and the `[[validate]]` schemas.
//!
//! They are replaced as a whole. Each connection keeps an `Arc` of the
//! set it last saw and compares one generation counter per frame (a
//! relaxed atomic load), taking the new set only when it changed; no lock
//! is taken per message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::auth::Authenticator;
use crate::config::{FeaturesConfig, LimitsConfig};
use crate::validate::Validation;

/// One generation of live settings.
pub(crate) struct Live {
    pub(crate) limits: LimitsConfig,
    pub(crate) features: FeaturesConfig,
    pub(crate) auth: Arc<dyn Authenticator>,
    pub(crate) validation: Validation,
}

/// The live settings in force, and their generation.
pub(crate) struct LiveCell {
    current: RwLock<Arc<Live>>,
    generation: AtomicU64,
}

impl LiveCell {
    pub(crate) fn new(live: Live) -> Self {
        LiveCell {
            current: RwLock::new(Arc::new(live)),
            generation: AtomicU64::new(0),
        }
    }

    /// The settings in force now.
    pub(crate) fn get(&self) -> Arc<Live> {
        self.current.read().clone()
    }

    /// Changes whenever the settings are replaced.
    #[inline]
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The settings and their generation, read together.
    pub(crate) fn snapshot(&self) -> (Arc<Live>, u64) {
        let current = self.current.read();
        (current.clone(), self.generation.load(Ordering::Acquire))
    }

    pub(crate) fn replace(&self, live: Live) {
        let mut current = self.current.write();
        *current = Arc::new(live);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}
