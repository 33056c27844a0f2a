//! The order lifecycle: orderflow's own state machine over TikTok's status
//! and the workflow's progress.
//!
//! ```text
//! pending ──► processing ──► fulfilled ──► delivered ──► completed
//!    │            │  ▲ │
//!    │            ▼  │ ▼
//!    │        on_hold exception          (hold/release, exception/resume)
//!    └──────────────┴──────────► cancelled
//! ```
//!
//! Transitions only move forward (by [`Lifecycle::rank`]) except the
//! explicit ones: hold/release, exception/resume. `completed` and
//! `cancelled` are terminal. The order's actor is the only writer, so every
//! transition is serialised per order.

use serde::{Deserialize, Serialize};

use crate::order::TiktokStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Lifecycle {
    /// Unpaid, or inside TikTok's buyer-cancel hold: not yet eligible.
    Pending,
    /// Eligible; its workflow is running.
    Processing,
    /// Paused by an operator or waiting for an approval.
    OnHold,
    /// Needs an operator: retries ran out or an expression failed.
    Exception,
    /// Shipped: tracking pushed to TikTok.
    Fulfilled,
    Delivered,
    Completed,
    Cancelled,
}

impl Lifecycle {
    pub const ALL: [Lifecycle; 8] = [
        Lifecycle::Pending,
        Lifecycle::Processing,
        Lifecycle::OnHold,
        Lifecycle::Exception,
        Lifecycle::Fulfilled,
        Lifecycle::Delivered,
        Lifecycle::Completed,
        Lifecycle::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Pending => "pending",
            Lifecycle::Processing => "processing",
            Lifecycle::OnHold => "on_hold",
            Lifecycle::Exception => "exception",
            Lifecycle::Fulfilled => "fulfilled",
            Lifecycle::Delivered => "delivered",
            Lifecycle::Completed => "completed",
            Lifecycle::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Lifecycle> {
        Lifecycle::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// Forward order. `on_hold` and `exception` share `processing`'s rank:
    /// moving between those three is the explicit, reversible part.
    pub fn rank(self) -> u8 {
        match self {
            Lifecycle::Pending => 0,
            Lifecycle::Processing | Lifecycle::OnHold | Lifecycle::Exception => 1,
            Lifecycle::Fulfilled => 2,
            Lifecycle::Delivered => 3,
            Lifecycle::Completed => 4,
            Lifecycle::Cancelled => 5,
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Lifecycle::Completed | Lifecycle::Cancelled)
    }

    /// Where a TikTok status puts an order, by itself.
    /// `None` for a status orderflow does not know.
    pub fn from_tiktok(s: &TiktokStatus) -> Option<Lifecycle> {
        Some(match s {
            TiktokStatus::Unpaid | TiktokStatus::OnHold => Lifecycle::Pending,
            TiktokStatus::AwaitingShipment | TiktokStatus::PartiallyShipping => {
                Lifecycle::Processing
            }
            TiktokStatus::AwaitingCollection | TiktokStatus::InTransit => Lifecycle::Fulfilled,
            TiktokStatus::Delivered => Lifecycle::Delivered,
            TiktokStatus::Completed => Lifecycle::Completed,
            TiktokStatus::Cancelled => Lifecycle::Cancelled,
            TiktokStatus::Unknown(_) => return None,
        })
    }

    /// The lifecycle after TikTok reports `s`: never backwards, never out
    /// of a terminal state; a hold or exception is kept until TikTok moves
    /// the order past processing (it shipped or was cancelled elsewhere).
    /// An unknown status changes nothing here (the runtime holds the order).
    pub fn on_tiktok_status(self, s: &TiktokStatus) -> Lifecycle {
        let Some(target) = Lifecycle::from_tiktok(s) else {
            return self;
        };
        if self.is_terminal() || target.rank() < self.rank() {
            return self;
        }
        if target.rank() == self.rank() {
            return self;
        }
        target
    }

    /// Is `self → to` a legal transition?
    pub fn can_move_to(self, to: Lifecycle) -> bool {
        use Lifecycle::*;
        if self == to {
            return true;
        }
        if self.is_terminal() {
            return false;
        }
        match (self, to) {
            (Processing, OnHold | Exception) => true,
            (OnHold | Exception, Processing) => true,
            (OnHold, Exception) | (Exception, OnHold) => true,
            (_, Cancelled) => true,
            _ => to.rank() > self.rank(),
        }
    }
}

impl std::fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No sequence of TikTok statuses, in any order or duplication,
        /// moves the lifecycle backwards or out of a terminal state.
        #[test]
        fn tiktok_updates_never_move_backwards(seq in prop::collection::vec(0usize..9, 0..40)) {
            let mut l = Lifecycle::Pending;
            for i in seq {
                let next = l.on_tiktok_status(&TiktokStatus::ALL[i]);
                prop_assert!(next.rank() >= l.rank());
                prop_assert!(l.can_move_to(next), "{l} -> {next}");
                if l.is_terminal() { prop_assert_eq!(next, l); }
                l = next;
            }
        }
    }

    #[test]
    fn explicit_transitions() {
        use Lifecycle::*;
        assert!(Processing.can_move_to(OnHold));
        assert!(OnHold.can_move_to(Processing));
        assert!(Exception.can_move_to(Processing));
        assert!(!Fulfilled.can_move_to(Processing));
        assert!(!Cancelled.can_move_to(Processing));
        assert!(!Completed.can_move_to(Cancelled));
        assert_eq!(
            OnHold.on_tiktok_status(&TiktokStatus::AwaitingShipment),
            OnHold
        );
        assert_eq!(OnHold.on_tiktok_status(&TiktokStatus::Cancelled), Cancelled);
        assert_eq!(
            Delivered.on_tiktok_status(&TiktokStatus::InTransit),
            Delivered
        );
    }
}
