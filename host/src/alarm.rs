//! A timer for "wake me by then", moved only ever earlier.
//!
//! Each call's deadline is later than those of the calls before it, and
//! resetting a tokio timer costs a wheel update under a lock and, as often
//! as not, a wake-up of the runtime's I/O driver: a syscall per call (a
//! tenth of the host's CPU per call, in bench/SERVE.md's profile). An
//! [`Alarm`] keeps the earliest time it was aimed at; it may go off before
//! what its owner waits for is due, and the owner then looks again and aims
//! it anew.

use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};

#[derive(Default)]
pub(crate) struct Alarm {
    sleep: Option<Pin<Box<Sleep>>>,
    /// When it goes off, while set.
    at: Option<Instant>,
}

impl Alarm {
    /// Makes it go off by `wake`: sets it if it is unset or set later.
    pub(crate) fn aim(&mut self, wake: Instant) {
        if self.at.is_some_and(|at| at <= wake) {
            return;
        }
        self.at = Some(wake);
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().reset(wake),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(wake))),
        }
    }

    /// Ready once it goes off, which unsets it; never while it is unset.
    pub(crate) fn poll_ring(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match (&mut self.sleep, self.at) {
            (Some(sleep), Some(_)) => {
                std::task::ready!(sleep.as_mut().poll(cx));
                self.at = None;
                Poll::Ready(())
            }
            _ => Poll::Pending,
        }
    }

    /// [`Alarm::poll_ring`] as a future.
    pub(crate) async fn ring(&mut self) {
        std::future::poll_fn(|cx| self.poll_ring(cx)).await;
    }
}
