//! The demultiplexer shared by the sync and the async client.
//!
//! One connection carries answers to many requests and items of many
//! streams. Whoever reads the socket (the sync client's reader thread, the
//! async client's reader task) hands every message to [`Demux::dispatch`],
//! which routes it to the [`ResponseSlot`] of its request or the
//! [`StreamQueue`] of its stream. Waiting on a slot or a queue works both
//! ways: blocking (a `Condvar`) and polling (a `Waker`), so the same state
//! serves both clients.
//!
//! Nothing here blocks the reader: a stream whose consumer falls behind
//! keeps at most its capacity of items and counts the rest as dropped by the
//! client, so one slow consumer never delays the responses and streams
//! sharing the connection.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use peeka_protocol::{ErrorBody, Message, Observation, Payload, RequestId, StreamEnd, StreamId};

use super::error::ClientError;

/// Extra room events get in a stream queue beyond the observation capacity,
/// so rare events are not lost behind a backlog of observations.
const EVENT_HEADROOM: usize = 256;

/// Locks `mutex`, ignoring poisoning: the state stays consistent because no
/// code here panics while holding a lock.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why the connection ended, kept to tell every waiter.
#[derive(Debug, Clone)]
pub(crate) struct Closed {
    /// The target's pid.
    pub(crate) pid: u32,
    /// What happened and what to do.
    pub(crate) detail: String,
}

impl Closed {
    /// The error a waiter reports.
    pub(crate) fn error(&self) -> ClientError {
        ClientError::Disconnected {
            pid: self.pid,
            detail: self.detail.clone(),
        }
    }
}

/// What a request's answer turned into.
#[derive(Debug)]
pub(crate) enum Answer {
    /// Success; for a stream-opening request, its queue.
    Ok(Payload, Option<Arc<StreamQueue>>),
    /// The agent's error.
    Err(ErrorBody),
    /// The connection ended first.
    Closed(Closed),
}

#[derive(Debug, Default)]
struct SlotState {
    answer: Option<Answer>,
    waker: Option<Waker>,
    /// Its waiter went away (see [`ResponseSlot::give_up`]).
    given_up: bool,
}

/// Where one request's answer is delivered.
#[derive(Debug, Default)]
pub(crate) struct ResponseSlot {
    state: Mutex<SlotState>,
    ready: Condvar,
}

impl ResponseSlot {
    /// Delivers `answer`; hands it back when no one will take it (the
    /// waiter gave up), so that a stream it opened can be cancelled.
    fn fill(&self, answer: Answer) -> Option<Answer> {
        let waker = {
            let mut state = lock(&self.state);
            if state.given_up {
                return Some(answer);
            }
            if state.answer.is_some() {
                return None;
            }
            state.answer = Some(answer);
            state.waker.take()
        };
        self.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
        None
    }

    /// The waiter goes away without waiting any longer: takes the answer if
    /// it already came (later ones are handed back by `fill`).
    pub(crate) fn give_up(&self) -> Option<Answer> {
        let mut state = lock(&self.state);
        state.given_up = true;
        state.waker = None;
        state.answer.take()
    }

    /// Blocks until the answer arrives or `deadline` passes (`None`).
    pub(crate) fn wait(&self, deadline: Instant) -> Option<Answer> {
        let mut state = lock(&self.state);
        loop {
            if let Some(answer) = state.answer.take() {
                return Some(answer);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            state = self
                .ready
                .wait_timeout(state, deadline - now)
                .map_or_else(|e| e.into_inner().0, |(guard, _)| guard);
        }
    }

    /// Polls for the answer, registering `cx`'s waker when it is not there.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<Answer> {
        let mut state = lock(&self.state);
        match state.answer.take() {
            Some(answer) => Poll::Ready(answer),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// One item of a stream, before the consumer decodes it.
#[derive(Debug)]
pub(crate) enum RawItem {
    /// An `observation`.
    Observation {
        /// Its position.
        seq: u64,
        /// Its data, undecoded.
        data: Payload,
    },
    /// An `event`.
    Event {
        /// Its position.
        seq: u64,
        /// What happened.
        kind: String,
        /// Details, undecoded.
        data: Payload,
    },
}

impl From<Observation> for RawItem {
    fn from(observation: Observation) -> Self {
        Self::Observation {
            seq: observation.seq,
            data: observation.data,
        }
    }
}

/// What a consumer finds in a [`StreamQueue`].
#[derive(Debug)]
pub(crate) enum Next {
    /// The next item.
    Item(RawItem),
    /// The stream ended (everything before it was taken).
    End(StreamEnd),
    /// The connection ended before the stream did.
    Lost(Closed),
}

#[derive(Debug, Default)]
struct QueueState {
    items: VecDeque<RawItem>,
    end: Option<StreamEnd>,
    lost: Option<Closed>,
    client_dropped: u64,
    /// The end (or the loss) was handed to the consumer.
    told: bool,
    waker: Option<Waker>,
}

/// The bounded buffer between the reader and one stream's consumer.
#[derive(Debug)]
pub(crate) struct StreamQueue {
    id: StreamId,
    capacity: usize,
    state: Mutex<QueueState>,
    ready: Condvar,
}

impl StreamQueue {
    fn new(id: StreamId, capacity: usize) -> Self {
        Self {
            id,
            capacity: capacity.max(1),
            state: Mutex::default(),
            ready: Condvar::new(),
        }
    }

    /// The stream's id.
    pub(crate) fn id(&self) -> StreamId {
        self.id
    }

    /// Items this client dropped because the consumer was behind.
    pub(crate) fn client_dropped(&self) -> u64 {
        lock(&self.state).client_dropped
    }

    /// Whether the stream ended or its connection was lost.
    pub(crate) fn is_finished(&self) -> bool {
        let state = lock(&self.state);
        state.end.is_some() || state.lost.is_some()
    }

    fn update(&self, change: impl FnOnce(&mut QueueState, usize) -> bool) {
        let waker = {
            let mut state = lock(&self.state);
            if !change(&mut state, self.capacity) {
                return;
            }
            state.waker.take()
        };
        self.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Queues `items` in order, each as if it came alone: one that finds
    /// the queue full is dropped and counted. Takes the lock and wakes the
    /// consumer once for all of them.
    fn push(&self, items: impl IntoIterator<Item = RawItem>) {
        self.update(|state, capacity| {
            let mut queued = false;
            for item in items {
                let room = match item {
                    RawItem::Observation { .. } => capacity,
                    RawItem::Event { .. } => capacity + EVENT_HEADROOM,
                };
                if state.items.len() >= room {
                    state.client_dropped += 1;
                } else {
                    state.items.push_back(item);
                    queued = true;
                }
            }
            queued
        });
    }

    fn finish(&self, end: StreamEnd) {
        self.update(|state, _| {
            state.end = Some(end);
            true
        });
    }

    fn lose(&self, closed: Closed) {
        self.update(|state, _| {
            if state.end.is_some() || state.lost.is_some() {
                return false;
            }
            state.lost = Some(closed);
            true
        });
    }

    fn take(state: &mut QueueState) -> Option<Next> {
        if let Some(item) = state.items.pop_front() {
            return Some(Next::Item(item));
        }
        if state.told {
            return None;
        }
        let last = match (&state.end, &state.lost) {
            (Some(end), _) => Next::End(end.clone()),
            (None, Some(lost)) => Next::Lost(lost.clone()),
            (None, None) => return None,
        };
        state.told = true;
        Some(last)
    }

    /// Blocks until something is there, or `deadline` (if any) passes
    /// (`None`). After `End` or `Lost` nothing more comes: the caller must
    /// stop asking (a further wait would block until its deadline).
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Option<Next> {
        let mut state = lock(&self.state);
        loop {
            if let Some(next) = Self::take(&mut state) {
                return Some(next);
            }
            state = match deadline {
                None => self
                    .ready
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return None;
                    }
                    self.ready
                        .wait_timeout(state, deadline - now)
                        .map_or_else(|e| e.into_inner().0, |(guard, _)| guard)
                }
            };
        }
    }

    /// Polls for the next thing, registering `cx`'s waker when empty.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<Next> {
        let mut state = lock(&self.state);
        match Self::take(&mut state) {
            Some(next) => Poll::Ready(next),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[derive(Debug)]
struct Pending {
    slot: Arc<ResponseSlot>,
    opens_stream: bool,
    /// Its waiter gave up; a stream it opens anyway must be cancelled.
    abandoned: bool,
}

#[derive(Debug, Default)]
struct State {
    pending: HashMap<RequestId, Pending>,
    streams: HashMap<StreamId, Arc<StreamQueue>>,
    closed: Option<Closed>,
}

/// What the reader must do after dispatching a message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Followup {
    /// Nothing.
    None,
    /// Send `cancel` for this stream (its request was abandoned).
    Cancel(StreamId),
}

/// Routes the messages of one connection (see the module documentation).
#[derive(Debug)]
pub(crate) struct Demux {
    pid: u32,
    stream_capacity: usize,
    state: Mutex<State>,
}

impl Demux {
    /// A demultiplexer for the connection to process `pid`, whose streams
    /// buffer at most `stream_capacity` observations each.
    pub(crate) fn new(pid: u32, stream_capacity: usize) -> Self {
        Self {
            pid,
            stream_capacity,
            state: Mutex::default(),
        }
    }

    /// Registers request `id` before it is sent.
    ///
    /// # Errors
    /// [`ClientError::Disconnected`] when the connection has ended.
    pub(crate) fn register(
        &self,
        id: RequestId,
        opens_stream: bool,
    ) -> Result<Arc<ResponseSlot>, ClientError> {
        let mut state = lock(&self.state);
        if let Some(closed) = &state.closed {
            return Err(closed.error());
        }
        let slot = Arc::new(ResponseSlot::default());
        state.pending.insert(
            id,
            Pending {
                slot: Arc::clone(&slot),
                opens_stream,
                abandoned: false,
            },
        );
        Ok(slot)
    }

    /// The waiter of request `id` gave up (timeout, or the request could
    /// not be sent). A stream-opening request stays registered so that the
    /// stream it opens after all is cancelled at once.
    pub(crate) fn abandon(&self, id: RequestId) {
        let mut state = lock(&self.state);
        match state.pending.get_mut(&id) {
            Some(pending) if pending.opens_stream => pending.abandoned = true,
            Some(_) => {
                state.pending.remove(&id);
            }
            None => {}
        }
    }

    /// Stops routing stream `id` (its consumer is gone); later messages of
    /// the stream are discarded.
    pub(crate) fn forget_stream(&self, id: StreamId) {
        lock(&self.state).streams.remove(&id);
    }

    /// The number of streams being routed (for tests).
    #[cfg(test)]
    pub(crate) fn open_streams(&self) -> usize {
        lock(&self.state).streams.len()
    }

    /// Why the connection ended, once it has.
    pub(crate) fn closed(&self) -> Option<Closed> {
        lock(&self.state).closed.clone()
    }

    /// Routes one message from the agent.
    ///
    /// # Errors
    /// A description of the protocol violation when the message has no
    /// place after the handshake; the reader then closes the connection.
    pub(crate) fn dispatch(&self, message: Message) -> Result<Followup, String> {
        match message {
            Message::Response(response) => {
                let mut state = lock(&self.state);
                let Some(pending) = state.pending.remove(&response.id) else {
                    // A late answer to a request whose waiter gave up.
                    return Ok(Followup::None);
                };
                let mut followup = Followup::None;
                let answer = match response.result {
                    Ok(data) if pending.opens_stream => {
                        if pending.abandoned {
                            followup = Followup::Cancel(response.id);
                            Answer::Ok(data, None)
                        } else {
                            let queue =
                                Arc::new(StreamQueue::new(response.id, self.stream_capacity));
                            state.streams.insert(response.id, Arc::clone(&queue));
                            Answer::Ok(data, Some(queue))
                        }
                    }
                    Ok(data) => Answer::Ok(data, None),
                    Err(error) => Answer::Err(error),
                };
                drop(state);
                // The waiter gave up between the lookup and now: nobody
                // will make a subscription of this stream, so cancel it.
                if let Some(Answer::Ok(_, Some(queue))) = pending.slot.fill(answer) {
                    self.forget_stream(queue.id());
                    followup = Followup::Cancel(queue.id());
                }
                Ok(followup)
            }
            Message::Observation(observation) => {
                self.deliver(observation.stream, [RawItem::from(observation)]);
                Ok(Followup::None)
            }
            // A batch (protocol 1.1) is its observations, delivered as if
            // each had come in a message of its own.
            Message::Observations(batch) => {
                self.deliver(batch.stream(), batch.into_observations().map(RawItem::from));
                Ok(Followup::None)
            }
            Message::Event(event) => {
                self.deliver(
                    event.stream,
                    [RawItem::Event {
                        seq: event.seq,
                        kind: event.kind,
                        data: event.data,
                    }],
                );
                Ok(Followup::None)
            }
            Message::StreamEnd(end) => {
                let queue = lock(&self.state).streams.remove(&end.stream);
                if let Some(queue) = queue {
                    queue.finish(end);
                }
                Ok(Followup::None)
            }
            other => Err(format!(
                "a `{}` message after the handshake, which only a client sends or only the handshake may carry",
                other.kind()
            )),
        }
    }

    /// Queues `items` for stream `id`; discards them when no one follows
    /// the stream (it ended, or its consumer went away).
    fn deliver(&self, id: StreamId, items: impl IntoIterator<Item = RawItem>) {
        let queue = lock(&self.state).streams.get(&id).cloned();
        if let Some(queue) = queue {
            queue.push(items);
        }
    }

    /// The connection ended: every waiter and stream learns why. Later
    /// calls keep the first reason.
    pub(crate) fn close(&self, detail: String) {
        let (pending, streams, closed) = {
            let mut state = lock(&self.state);
            if state.closed.is_some() {
                return;
            }
            let closed = Closed {
                pid: self.pid,
                detail,
            };
            state.closed = Some(closed.clone());
            (
                std::mem::take(&mut state.pending),
                std::mem::take(&mut state.streams),
                closed,
            )
        };
        for pending in pending.into_values() {
            let _ = pending.slot.fill(Answer::Closed(closed.clone()));
        }
        for queue in streams.into_values() {
            queue.lose(closed.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peeka_protocol::{EndReason, ObservationBatch, Response};
    use std::time::Duration;

    fn observation(stream: u64, seq: u64) -> Message {
        Message::Observation(Observation {
            stream,
            seq,
            data: Payload::from_json("{}").unwrap(),
        })
    }

    fn ok(id: u64) -> Message {
        Message::Response(Response {
            id,
            result: Ok(Payload::from_json(r#"{"stream": 1}"#).unwrap()),
        })
    }

    fn batch(stream: u64, seq: u64, len: usize) -> Message {
        let data = (0..len)
            .map(|i| Payload::from_json(&i.to_string()).unwrap())
            .collect();
        Message::Observations(ObservationBatch::new(stream, seq, data).unwrap())
    }

    /// Opens stream `id` on `demux` and returns its queue.
    fn open(demux: &Demux, id: u64) -> Arc<StreamQueue> {
        let slot = demux.register(id, true).unwrap();
        demux.dispatch(ok(id)).unwrap();
        let Some(Answer::Ok(_, Some(queue))) = slot.wait(Instant::now()) else {
            panic!("no queue")
        };
        queue
    }

    /// What the consumer of a stream that ended takes: (seq, data) of each
    /// observation.
    fn drain(demux: &Demux, queue: &StreamQueue) -> Vec<(u64, String)> {
        demux
            .dispatch(Message::StreamEnd(StreamEnd {
                stream: queue.id(),
                reason: EndReason::CountReached,
                dropped: 0,
                error: None,
            }))
            .unwrap();
        let mut items = Vec::new();
        while let Some(Next::Item(RawItem::Observation { seq, data })) = queue.wait(None) {
            items.push((seq, data.as_str().to_owned()));
        }
        items
    }

    #[test]
    fn a_batch_is_delivered_as_its_single_observations() {
        let demux = Demux::new(1, 64);
        let (batched, single) = (open(&demux, 1), open(&demux, 2));
        for message in [batch(1, 10, 3), observation(1, 13), batch(1, 20, 2)] {
            assert_eq!(demux.dispatch(message).unwrap(), Followup::None);
        }
        for seq in [10, 11, 12, 13, 20, 21] {
            demux.dispatch(observation(2, seq)).unwrap();
        }
        let seqs = |items: Vec<(u64, String)>| items.into_iter().map(|(seq, _)| seq).collect();
        let from_batches: Vec<u64> = seqs(drain(&demux, &batched));
        assert_eq!(from_batches, [10, 11, 12, 13, 20, 21]);
        assert_eq!(from_batches, seqs(drain(&demux, &single)));
        // A batch of a stream nobody follows is discarded.
        assert_eq!(demux.dispatch(batch(9, 0, 4)).unwrap(), Followup::None);
    }

    #[test]
    fn a_full_stream_drops_and_counts_without_blocking() {
        let demux = Demux::new(1, 2);
        let queue = open(&demux, 1);
        for seq in 0..5 {
            demux.dispatch(observation(1, seq)).unwrap();
        }
        assert_eq!(queue.client_dropped(), 3);
        assert_eq!(drain(&demux, &queue), [(0, "{}".into()), (1, "{}".into())]);
        assert!(queue.is_finished());
    }

    #[test]
    fn a_batch_into_a_full_stream_drops_and_counts_like_single_messages() {
        let demux = Demux::new(1, 2);
        let queue = open(&demux, 1);
        demux.dispatch(batch(1, 0, 5)).unwrap();
        assert_eq!(queue.client_dropped(), 3);
        assert_eq!(drain(&demux, &queue), [(0, "0".into()), (1, "1".into())]);
    }

    #[test]
    fn an_abandoned_stream_request_is_cancelled_when_it_opens() {
        let demux = Demux::new(1, 8);
        let slot = demux.register(7, true).unwrap();
        assert!(slot.wait(Instant::now()).is_none());
        demux.abandon(7);
        assert_eq!(demux.dispatch(ok(7)).unwrap(), Followup::Cancel(7));
        assert_eq!(demux.open_streams(), 0);
    }

    #[test]
    fn a_stream_whose_waiter_gave_up_after_the_lookup_is_cancelled() {
        // The answer was routed to the slot's request just before its
        // waiter gave up, and delivered just after.
        let demux = Demux::new(1, 8);
        let slot = demux.register(3, true).unwrap();
        let pending = lock(&demux.state).pending.remove(&3).unwrap();
        assert!(slot.give_up().is_none());
        lock(&demux.state).pending.insert(3, pending);
        assert_eq!(demux.dispatch(ok(3)).unwrap(), Followup::Cancel(3));
        assert_eq!(demux.open_streams(), 0);
    }

    #[test]
    fn giving_up_takes_an_answer_that_already_came() {
        let demux = Demux::new(1, 8);
        let slot = demux.register(4, true).unwrap();
        assert_eq!(demux.dispatch(ok(4)).unwrap(), Followup::None);
        assert_eq!(demux.open_streams(), 1);
        let Some(Answer::Ok(_, Some(queue))) = slot.give_up() else {
            panic!("the answer should be there")
        };
        assert_eq!(queue.id(), 4);
    }

    #[test]
    fn closing_wakes_every_waiter() {
        let demux = Arc::new(Demux::new(42, 8));
        let slot = demux.register(1, false).unwrap();
        let closer = Arc::clone(&demux);
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            closer.close("gone".into());
        });
        let answer = slot.wait(Instant::now() + Duration::from_secs(5));
        thread.join().unwrap();
        assert!(matches!(answer, Some(Answer::Closed(c)) if c.pid == 42));
        assert!(demux.register(2, false).is_err());
    }

    #[test]
    fn messages_only_a_client_sends_are_protocol_errors() {
        let demux = Demux::new(1, 8);
        let cancel = Message::Cancel(peeka_protocol::Cancel { stream: 1 });
        assert!(demux.dispatch(cancel).is_err());
    }
}
