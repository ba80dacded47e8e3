//! What frame answers may hold while they are sent. A client that asks for frames and never
//! reads them keeps each answer's bytes (and its socket's buffer) alive until the stall guard
//! drops it: 128 such requests from 4 machines held hundreds of megabytes. A page needs about
//! two frame requests at once (its stream and a picture), so each pass and each machine gets a
//! few, and the bytes of all answers in flight come out of one budget of which no machine may
//! take more than an eighth: a few machines that stop reading cannot starve everyone else.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

use super::AppState;
use super::error::ServerError;
use super::gate::handle_of;
use super::viewer::PeerAddr;
use crate::admission::Gate;
use crate::net::machine_of;

/// No machine holds more than one part in this many of the byte budget (a single answer larger
/// than that still goes when the machine holds no bytes yet and the budget has room).
const MACHINE_SHARE: usize = 8;

/// Frame answers in flight, by pass and by machine, and their bytes.
#[derive(Debug)]
pub struct InFlight {
    per_pass: usize,
    per_machine: usize,
    budget: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    passes: HashMap<String, usize>,
    /// Answers and bytes per machine (`None`: a client whose address is unknown, in tests).
    machines: HashMap<Option<IpAddr>, (usize, usize)>,
    bytes: usize,
}

impl InFlight {
    pub fn new(per_pass: usize, per_machine: usize, budget: usize) -> Self {
        Self {
            per_pass: per_pass.max(1),
            per_machine: per_machine.max(1),
            budget,
            held: Mutex::new(Held::default()),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one more frame request of `pass` from `machine`, or says why it must wait.
    fn enter(
        self: &Arc<Self>,
        machine: Option<IpAddr>,
        pass: Option<&str>,
    ) -> Result<Ticket, ServerError> {
        let mut held = self.held();
        let (from_machine, machine_bytes) = held.machines.get(&machine).copied().unwrap_or((0, 0));
        if from_machine >= self.per_machine {
            return Err(ServerError::TooManyInFlight);
        }
        // A machine whose answers already hold its share would only be refused after the
        // encode: refused before it.
        if machine_bytes >= self.budget / MACHINE_SHARE {
            return Err(ServerError::Overloaded);
        }
        if let Some(pass) = pass {
            let from_pass = held.passes.get(pass).copied().unwrap_or(0);
            if from_pass >= self.per_pass {
                return Err(ServerError::TooManyInFlight);
            }
            *held.passes.entry(pass.to_owned()).or_default() += 1;
        }
        held.machines.entry(machine).or_default().0 += 1;
        Ok(Ticket {
            owner: self.clone(),
            machine,
            pass: pass.map(str::to_owned),
            bytes: 0,
        })
    }

    /// Adds `bytes` to what `ticket`'s answer holds, when the budget and the machine's share
    /// allow it.
    fn carry(&self, ticket: &mut Ticket, bytes: usize) -> Result<(), ServerError> {
        self.take_bytes(ticket.machine, bytes)?;
        ticket.bytes += bytes;
        Ok(())
    }

    /// `bytes` of an update a stream of `machine` is sending, made for it alone, from the
    /// budget until the guard is dropped (when the stream asks for its next update, this one
    /// went out).
    pub fn hold(
        self: &Arc<Self>,
        machine: Option<IpAddr>,
        bytes: usize,
    ) -> Result<HeldBytes, ServerError> {
        self.take_bytes(machine, bytes)?;
        Ok(HeldBytes {
            owner: self.clone(),
            machine,
            bytes,
        })
    }

    /// Counts `bytes` for `machine` when the budget has room and the machine stays within its
    /// share (a machine holding no bytes yet may take one answer larger than its share).
    fn take_bytes(&self, machine: Option<IpAddr>, bytes: usize) -> Result<(), ServerError> {
        let mut held = self.held();
        let machine_bytes = held.machines.get(&machine).map_or(0, |(_, bytes)| *bytes);
        let beyond_share = machine_bytes > 0 && machine_bytes + bytes > self.budget / MACHINE_SHARE;
        if held.bytes + bytes > self.budget || beyond_share {
            return Err(ServerError::Overloaded);
        }
        held.bytes += bytes;
        held.machines.entry(machine).or_default().1 += bytes;
        Ok(())
    }

    /// Gives back `answers` places and `bytes` of `machine`.
    fn give_back(held: &mut Held, machine: Option<IpAddr>, answers: usize, bytes: usize) {
        held.bytes = held.bytes.saturating_sub(bytes);
        if let Some(entry) = held.machines.get_mut(&machine) {
            entry.0 = entry.0.saturating_sub(answers);
            entry.1 = entry.1.saturating_sub(bytes);
            if *entry == (0, 0) {
                held.machines.remove(&machine);
            }
        }
    }

    fn leave(&self, ticket: &Ticket) {
        let mut held = self.held();
        Self::give_back(&mut held, ticket.machine, 1, ticket.bytes);
        if let Some(pass) = &ticket.pass
            && let Some(count) = held.passes.get_mut(pass)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.passes.remove(pass);
            }
        }
    }

    /// Bytes held by answers in flight now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.held().bytes
    }
}

/// Bytes of a stream's update in the budget, given back when dropped.
#[derive(Debug)]
pub struct HeldBytes {
    owner: Arc<InFlight>,
    machine: Option<IpAddr>,
    bytes: usize,
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        let mut held = self.owner.held();
        InFlight::give_back(&mut held, self.machine, 0, self.bytes);
    }
}

/// One frame answer's place, given back when its body is done or dropped.
#[derive(Debug)]
struct Ticket {
    owner: Arc<InFlight>,
    machine: Option<IpAddr>,
    pass: Option<String>,
    bytes: usize,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.owner.leave(self);
    }
}

/// Route layer for the frame routes (inside the admission gate, so only admitted requests
/// count): a place per request, and the answer's bytes from the budget.
pub async fn limit_frames(
    State(state): State<AppState>,
    peer: PeerAddr,
    request: Request,
    next: Next,
) -> Result<Response, ServerError> {
    let pass = handle_of(request.extensions().get::<Gate>()).map(str::to_owned);
    let machine = peer.0.map(machine_of);
    let mut ticket = state.in_flight_frames.enter(machine, pass.as_deref())?;
    let response = next.run(request).await;
    // Whole frames know their size; a stream does not, and holds one update at a time.
    if let Some(bytes) = http_body::Body::size_hint(response.body())
        .exact()
        .filter(|bytes| *bytes > 0)
    {
        let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        state.in_flight_frames.carry(&mut ticket, bytes)?;
    }
    let (parts, body) = response.into_parts();
    Ok(Response::from_parts(
        parts,
        Body::new(Holding {
            inner: body,
            _ticket: ticket,
        }),
    ))
}

/// A body that keeps its answer's place until it is sent or dropped. (Not `map_frame`: that
/// loses the size, and with it the answer's `Content-Length`.)
struct Holding {
    inner: Body,
    _ticket: Ticket,
}

impl http_body::Body for Holding {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn each_pass_and_each_machine_has_a_few_places() {
        let in_flight = Arc::new(InFlight::new(2, 3, 1 << 20));
        let first = in_flight.enter(machine(1), Some("a")).expect("a place");
        let _second = in_flight.enter(machine(1), Some("a")).expect("a place");
        assert!(matches!(
            in_flight.enter(machine(1), Some("a")),
            Err(ServerError::TooManyInFlight)
        ));
        let _other_pass = in_flight.enter(machine(1), Some("b")).expect("a place");
        assert!(
            in_flight.enter(machine(1), Some("c")).is_err(),
            "the machine's places are taken"
        );
        assert!(
            in_flight.enter(machine(2), Some("c")).is_ok(),
            "another machine"
        );
        drop(first);
        assert!(
            in_flight.enter(machine(1), Some("a")).is_ok(),
            "a place given back"
        );
    }

    #[test]
    fn bytes_come_from_one_budget_of_which_a_machine_takes_an_eighth() {
        let in_flight = Arc::new(InFlight::new(8, 8, 800));
        let mut alone = in_flight.enter(machine(1), None).expect("a place");
        // Larger than the machine's share, but nothing else of the machine is in flight.
        in_flight
            .carry(&mut alone, 300)
            .expect("one large answer goes");
        assert!(
            matches!(
                in_flight.enter(machine(1), None),
                Err(ServerError::Overloaded)
            ),
            "the machine holds its share already"
        );
        let mut others = Vec::new();
        for last in 2..=6 {
            let mut ticket = in_flight.enter(machine(last), None).expect("a place");
            in_flight
                .carry(&mut ticket, 100)
                .expect("within the budget");
            others.push(ticket);
        }
        assert_eq!(in_flight.bytes(), 800);
        let mut late = in_flight.enter(machine(7), None).expect("a place");
        assert!(
            in_flight.carry(&mut late, 1).is_err(),
            "the budget is spent"
        );
        drop(alone);
        drop(others);
        assert_eq!(in_flight.bytes(), 0, "every byte given back");
        in_flight.carry(&mut late, 100).expect("room again");
    }

    #[test]
    fn a_second_answer_beyond_the_machines_share_is_refused() {
        let in_flight = Arc::new(InFlight::new(8, 8, 800));
        let mut first = in_flight.enter(machine(1), None).expect("a place");
        in_flight.carry(&mut first, 60).expect("within the share");
        let mut second = in_flight.enter(machine(1), None).expect("a place");
        assert!(matches!(
            in_flight.carry(&mut second, 50),
            Err(ServerError::Overloaded)
        ));
        in_flight.carry(&mut second, 40).expect("up to the share");
    }
}
