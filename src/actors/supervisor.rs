//! The supervisor: which order has a live actor, on which arbiter.
//!
//! It hands out actor addresses (spawning an actor from its checkpoint when
//! there is none), forgets actors that passivated or died, and keeps the
//! `orderflow_actors_active` count honest. It never awaits anything, so it
//! is never the slow part of a delivery.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

use super::order::OrderActor;
use super::{Passivated, Shared};

/// The address of an order's actor, spawned if needed.
#[derive(Message)]
#[rtype(result = "Addr<OrderActor>")]
pub struct GetOrSpawn(pub String);

/// A caller found this address closed: the actor died.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Dead {
    pub order_id: String,
    pub addr: Addr<OrderActor>,
}

/// How many actors are live.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Count;

pub struct Supervisor {
    shared: Arc<Shared>,
    arbiters: Vec<ArbiterHandle>,
    actors: HashMap<String, Addr<OrderActor>>,
}

impl Supervisor {
    pub fn new(shared: Arc<Shared>, arbiters: Vec<ArbiterHandle>) -> Supervisor {
        Supervisor {
            shared,
            arbiters,
            actors: HashMap::new(),
        }
    }

    fn spawn(&mut self, id: &str) -> Addr<OrderActor> {
        let shared = self.shared.clone();
        let order_id = id.to_string();
        let addr = if self.arbiters.is_empty() {
            OrderActor::new(order_id, shared).start()
        } else {
            let i = (fxhash(id) as usize) % self.arbiters.len();
            OrderActor::start_in_arbiter(&self.arbiters[i], move |_| {
                OrderActor::new(order_id, shared)
            })
        };
        self.actors.insert(id.to_string(), addr.clone());
        self.shared.pressure.set_active(self.actors.len());
        addr
    }

    fn forget(&mut self, order_id: &str, addr: &Addr<OrderActor>) -> bool {
        if self.actors.get(order_id) == Some(addr) {
            self.actors.remove(order_id);
            self.shared.pressure.set_active(self.actors.len());
            true
        } else {
            false
        }
    }
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
    }
}

impl Handler<GetOrSpawn> for Supervisor {
    type Result = MessageResult<GetOrSpawn>;

    fn handle(&mut self, m: GetOrSpawn, _: &mut Context<Self>) -> Self::Result {
        match self.actors.get(&m.0) {
            Some(a) if a.connected() => MessageResult(a.clone()),
            _ => MessageResult(self.spawn(&m.0)),
        }
    }
}

impl Handler<Passivated> for Supervisor {
    type Result = ();

    fn handle(&mut self, m: Passivated, _: &mut Context<Self>) {
        self.forget(&m.order_id, &m.addr);
    }
}

impl Handler<Dead> for Supervisor {
    type Result = ();

    fn handle(&mut self, m: Dead, _: &mut Context<Self>) {
        if self.forget(&m.order_id, &m.addr) {
            tracing::warn!(order_id = %m.order_id, "An order actor died; it is rebuilt from its checkpoint");
            metrics::counter!(crate::metrics::ACTOR_RESTARTS_TOTAL).increment(1);
        }
    }
}

impl Handler<Count> for Supervisor {
    type Result = usize;

    fn handle(&mut self, _: Count, _: &mut Context<Self>) -> usize {
        self.actors.retain(|_, a| a.connected());
        self.shared.pressure.set_active(self.actors.len());
        self.actors.len()
    }
}
