//! The gateway's root context, one per Envoy worker: one timer for the
//! counters' flush (see [`Counters`]) and the health probes (see
//! [`Monitor`]), and the answers to the probes' HTTP calls.
//!
//! Envoy also configures the plugin on its main thread, which never serves
//! a request: a root starts probing when its first request arrives, so only
//! the workers that serve probe (and a worker's first probes go out within
//! a second of its first request).

use crate::config::Gateway;
use crate::exchange::{Counters, FLUSH_EVERY_MS};
use crate::host::Host;
use crate::monitor::Monitor;
use log::error;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

/// The timer's period while backends are probed: probes fall due at their
/// own times, so the timer checks often (a check costs no host call but
/// the clock's).
pub const PROBE_TICK_MS: u64 = 100;

#[derive(Debug)]
pub struct GatewayRoot {
    pub gateway: Rc<Gateway>,
    pub counters: Rc<Counters>,
    /// Started by the first request (see the module's documentation).
    monitor: RefCell<Option<Monitor>>,
    flushed_at_ms: Cell<u64>,
}

impl GatewayRoot {
    /// The root of a configured gateway.
    pub fn new<H: Host>(host: &H, gateway: Rc<Gateway>) -> Self {
        GatewayRoot {
            monitor: RefCell::new(None),
            gateway,
            counters: Rc::new(Counters::default()),
            flushed_at_ms: Cell::new(now_ms(host).unwrap_or(0)),
        }
    }

    /// How often the host should call [`GatewayRoot::on_tick`].
    pub fn tick_period(&self) -> Duration {
        if self.probed() {
            Duration::from_millis(PROBE_TICK_MS)
        } else {
            Duration::from_millis(FLUSH_EVERY_MS)
        }
    }

    /// A request arrived: this root serves, so it probes from now on. The
    /// probes' jitter is seeded from the clock's nanoseconds, which differ
    /// between workers.
    pub fn on_request<H: Host>(&self, host: &H) {
        let mut monitor = self.monitor.borrow_mut();
        if monitor.is_some() || !self.probed() {
            return;
        }
        let now_ns = host.now_ns().unwrap_or_else(|status| {
            error!("openai-gateway: cannot read the clock ({status:?}); probes start from 0");
            0
        });
        *monitor = Monitor::new(self.gateway.clone(), now_ns, now_ns / 1_000_000);
    }

    /// The timer: probes due, and the counters every [`FLUSH_EVERY_MS`].
    pub fn on_tick<H: Host>(&self, host: &H) {
        let Some(now_ms) = now_ms(host) else {
            // Without a clock, at least the counters go on.
            self.counters.flush(host);
            return;
        };
        if let Some(monitor) = self.monitor.borrow_mut().as_mut() {
            monitor.on_tick(host, now_ms);
        }
        let since = now_ms.abs_diff(self.flushed_at_ms.get());
        if !self.probed() || since >= FLUSH_EVERY_MS {
            self.counters.flush(host);
            self.flushed_at_ms.set(now_ms);
        }
    }

    /// The answer to an HTTP call this root made.
    pub fn on_http_call_response<H: Host>(&self, host: &H, token: u32, body_size: usize) {
        let now_ms = now_ms(host).unwrap_or(self.flushed_at_ms.get());
        if let Some(monitor) = self.monitor.borrow_mut().as_mut() {
            monitor.on_answer(host, token, body_size, now_ms);
        }
    }

    /// The VM is going away: its last counts go to Envoy first.
    pub fn on_done<H: Host>(&self, host: &H) {
        self.counters.flush(host);
    }

    /// The probes' view of a backend (what the tests check).
    #[cfg(test)]
    pub fn is_live(&self, backend: &str) -> bool {
        self.monitor
            .borrow()
            .as_ref()
            .is_none_or(|m| m.is_live(backend))
    }

    /// Whether any backend has a probe.
    fn probed(&self) -> bool {
        !self.gateway.probes.is_empty()
    }
}

/// The host's clock in milliseconds.
fn now_ms<H: Host>(host: &H) -> Option<u64> {
    host.now_ns().ok().map(|ns| ns / 1_000_000)
}
