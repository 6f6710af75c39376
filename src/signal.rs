//! A tiny change notification: tasks wait for "something about this lock changed".

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub(crate) struct Signal {
    state: Mutex<(u64, Vec<Waker>)>,
}

impl Signal {
    /// Wakes every task waiting on [`changed`](Self::changed) futures made before this call.
    pub(crate) fn notify(&self) {
        let wakers = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.0 = s.0.wrapping_add(1);
            std::mem::take(&mut s.1)
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Completes at the first [`notify`](Self::notify) after this call. Make it *before*
    /// checking the state it guards, so no notification is missed.
    pub(crate) fn changed(&self) -> Changed<'_> {
        let seen = self.state.lock().unwrap_or_else(|e| e.into_inner()).0;
        Changed { signal: self, seen }
    }
}

pub(crate) struct Changed<'a> {
    signal: &'a Signal,
    seen: u64,
}

impl Future for Changed<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.signal.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.0 != self.seen {
            return Poll::Ready(());
        }
        if !s.1.iter().any(|w| w.will_wake(cx.waker())) {
            s.1.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn wakes_only_after_notify() {
        let s = Signal::default();
        let mut c = s.changed();
        assert!((&mut c).now_or_never().is_none());
        s.notify();
        assert!(c.now_or_never().is_some());
        let later = s.changed();
        assert!(later.now_or_never().is_none());
    }
}
