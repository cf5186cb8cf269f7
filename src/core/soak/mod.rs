//! `regbox soak` without I/O: the seeded nemesis schedule, the JSONL event log and its summary, and the
//! invariants checked after every fault.

pub mod arrivals;
pub mod events;
pub mod invariants;
pub mod schedule;

pub use arrivals::Arrivals;
pub use events::{
    parse_log, summarize, Event, EventError, EventKind, FaultInterval, InvariantResult, Reorg,
    Summary,
};
pub use invariants::{
    check_all, converged, crashed, mempools, parse_chainwork, stuck, Limits, NodeSample, Verdict,
};
pub use schedule::{
    parse_faults, parse_span, schedule, FaultKind, ScheduleError, ScheduleSpec, Step, StepDetail,
    MAX_STEPS,
};
