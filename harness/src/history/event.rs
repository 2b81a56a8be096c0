//! One record per operation of a run. Times are nanoseconds since the Unix epoch, taken from the
//! same wall clock in the coordinator and in the worker processes (one machine, one clock).

use serde::{Deserialize, Serialize};

use crate::message::MsgId;
pub use crate::message::Position;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Phase {
    /// Producers start; t=0 of every time axis. Figures (throughput, latency) count from
    /// `warmup_ns` later; the schedule lasts `duration_ns`.
    LoadStart { warmup_ns: u64, duration_ns: u64 },
    /// Producers stopped; consumers drain.
    LoadEnd,
    /// Draining finished; the run is over.
    DrainEnd,
    /// The run was interrupted (Ctrl-C); what follows is partial.
    Interrupted,
    /// Every fault healed and the workload's consumers stopped: fresh clients, straight to the
    /// broker, now read what is still stored (`FinalRead` events), ending with `FinalReadDone`.
    FinalReadStart,
    /// Right after `LoadStart`: the workload has no consumers (`consumers.count: 0`), so what
    /// the final read finds was stored as meant, not left unread.
    ProducersOnly,
    /// The workload's backlog is built (`load.backlog`): the consumers start now, with
    /// `backlog` messages acknowledged and not yet processed.
    ConsumersStart { backlog: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum WorkerEvent {
    /// The worker is connected and subscribed.
    Ready { pid: u32 },
    /// The worker exited by itself (or failed to start); `detail` says how.
    Exited { detail: String },
    /// The harness killed the worker (a crash fault or the end of the run).
    Killed { signal: String },
    /// The harness started the worker process (recorded as it starts; `Ready` follows once it
    /// is connected). A consumer started mid-run joins the group: a membership change.
    /// (Appended last, as are the next: older histories still read.)
    Started { pid: u32 },
    /// The harness asked the worker to finish and leave (a scale-in, or the end of the run):
    /// a consumer stops taking new deliveries, acknowledges what it has, and leaves its group.
    Stopping,
}

/// Which of the harness's clients an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ClientRole {
    Producer,
    Consumer,
}

/// How the final read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FinalReadOutcome {
    /// Everything the broker still stored for the run was read.
    Complete,
    /// `run.final_read_timeout` passed first: what it did not get to is not verified.
    TimedOut,
    /// It could not run (e.g. the broker could not be reached); `detail` says why.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum FaultPhase {
    Start,
    Stop,
    /// Could not be applied; `detail` says why.
    Failed,
    /// What the broker said once the fault was undone (a cluster's leader by then), asked after
    /// the stop was recorded so that asking does not move the stop's time.
    After,
    /// Its start began (Jepsen's invoke): recorded before the fault is applied, so that one
    /// whose start takes a while (a node restart: seconds) is on record from when it began to
    /// act. `Start` follows once it is in force. (Appended last: older histories still read.)
    Invoke,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Event {
    /// First record: which run and broker this history belongs to.
    Header {
        run_id: String,
        broker: String,
        t: u64,
    },
    Phase {
        t: u64,
        phase: Phase,
    },
    /// A producer handed a message to its client library.
    SendInvoke {
        t: u64,
        id: MsgId,
        intended: u64,
    },
    /// The broker acknowledged the send.
    SendOk {
        t: u64,
        id: MsgId,
        intended: u64,
        pos: Position,
    },
    /// The send definitely failed (the broker or client said it was not stored).
    SendFail {
        t: u64,
        id: MsgId,
        error: String,
    },
    /// Outcome unknown (timeout, connection lost with the send in flight).
    SendInfo {
        t: u64,
        id: MsgId,
        error: String,
    },
    /// A consumer received a message carrying our envelope.
    Deliver {
        t: u64,
        consumer: u32,
        id: MsgId,
        intended: u64,
        pos: Position,
        redelivered: bool,
        receive_count: u32,
    },
    /// A consumer received something that is not one of this run's messages.
    Foreign {
        t: u64,
        consumer: u32,
        pos: Position,
        detail: String,
    },
    /// The consumer finished processing a delivery (its effect happened).
    Processed {
        t: u64,
        consumer: u32,
        id: MsgId,
    },
    /// The consumer skipped a delivery its processed-ids store had already seen.
    DedupeSkip {
        t: u64,
        consumer: u32,
        id: MsgId,
    },
    /// The consumer acknowledged / committed / deleted the delivery.
    Ack {
        t: u64,
        consumer: u32,
        id: MsgId,
    },
    /// An operation of a consumer failed (poll, ack); availability counts these.
    ConsumerError {
        t: u64,
        consumer: u32,
        error: String,
    },
    Worker {
        t: u64,
        consumer: u32,
        event: WorkerEvent,
    },
    Fault {
        t: u64,
        index: u32,
        kind: String,
        phase: FaultPhase,
        detail: String,
    },
    /// A producer process's life; producers run as processes only when the schedule crashes
    /// them. (Appended last: earlier variants keep their encoding, so old histories still read.)
    ProducerWorker {
        t: u64,
        producer: u32,
        event: WorkerEvent,
    },
    /// A client of the harness was replaced by a fresh one: its connection died, or it made no
    /// progress (`reason` says which), as an application's reconnect logic would do.
    Reconnect {
        t: u64,
        role: ClientRole,
        index: u32,
        reason: String,
    },
    /// The final read found this value still stored on the broker.
    FinalRead {
        t: u64,
        id: MsgId,
        intended: u64,
        pos: Position,
        redelivered: bool,
        receive_count: u32,
    },
    /// The final read ended; `read` values were found.
    FinalReadDone {
        t: u64,
        outcome: FinalReadOutcome,
        read: u64,
        detail: String,
    },
    /// Once a second while the load and the drain run: what the broker's own processes (the
    /// target's pid file's process and its descendants) used in the `interval_ns` before `t`.
    /// Nothing is recorded while the broker is down.
    BrokerUsage {
        t: u64,
        interval_ns: u64,
        processes: u32,
        /// User + system CPU time.
        cpu_ns: u64,
        /// Resident memory at `t`.
        rss_bytes: u64,
        /// Bytes they caused to be written to storage.
        written_bytes: u64,
    },
    /// A producer with `max_in_flight: auto` settled on its window: `size` sends in flight.
    SendWindow {
        t: u64,
        producer: u32,
        size: u32,
    },
    /// A client of the harness connected to one node of several (first, or after a reconnect):
    /// which node each client used, for clusters.
    Connected {
        t: u64,
        role: ClientRole,
        index: u32,
        endpoint: String,
    },
    /// The cluster as the target's `view` command described it at `t`, one (name, state) pair
    /// per line it printed (`n1: n1 n2 n3`, `leader: n2`, or `view: no answer` when the command
    /// failed). Recorded when the answer differs from the one before.
    ClusterView {
        t: u64,
        lines: Vec<(String, String)>,
    },
    /// The cluster nodes fault `index` acted on when it started, each with what it did to that
    /// node (`cut from n2 n3`, `30% loss to clients`, `kill`): its window, node by node.
    /// Recorded right after the fault's `Start`.
    FaultNodes {
        t: u64,
        index: u32,
        nodes: Vec<(String, String)>,
    },
    /// Once the consumers are gone, the idempotent consumers' own store (their processed-ids
    /// table) holds `id`, committed by `consumer` together with its effect. It is evidence of
    /// processing as good as a `Processed` record: a consumer killed between its commit and
    /// that record processed the value all the same.
    StoreHolds {
        t: u64,
        consumer: u32,
        id: MsgId,
    },
    /// The store was read: `rows` rows of this run, each recorded as `StoreHolds`; or it could
    /// not be read (`complete` false), and `detail` says why.
    StoreRead {
        t: u64,
        complete: bool,
        rows: u64,
        detail: String,
    },
}

impl Event {
    pub fn time(&self) -> u64 {
        match self {
            Event::Header { t, .. }
            | Event::Phase { t, .. }
            | Event::SendInvoke { t, .. }
            | Event::SendOk { t, .. }
            | Event::SendFail { t, .. }
            | Event::SendInfo { t, .. }
            | Event::Deliver { t, .. }
            | Event::Foreign { t, .. }
            | Event::Processed { t, .. }
            | Event::DedupeSkip { t, .. }
            | Event::Ack { t, .. }
            | Event::ConsumerError { t, .. }
            | Event::Worker { t, .. }
            | Event::Fault { t, .. }
            | Event::ProducerWorker { t, .. }
            | Event::Reconnect { t, .. }
            | Event::FinalRead { t, .. }
            | Event::FinalReadDone { t, .. }
            | Event::BrokerUsage { t, .. }
            | Event::SendWindow { t, .. }
            | Event::Connected { t, .. }
            | Event::ClusterView { t, .. }
            | Event::FaultNodes { t, .. }
            | Event::StoreHolds { t, .. }
            | Event::StoreRead { t, .. } => *t,
        }
    }
}

/// Wall-clock time in ns since the Unix epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
