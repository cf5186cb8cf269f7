//! A cluster as declared and as laid out: the manifest, where each node goes (placement, blueprint:
//! names, addresses, labels, subnets), the reconcile planner and the sessions it reads, the lock's
//! holder, the host limits, what the operator measures, the compose export, and what regbox asks of
//! its node images' init.

pub mod blueprint;
pub mod compose;
pub mod init;
pub mod limits;
pub mod lock;
pub mod manifest;
pub mod metrics;
pub mod placement;
pub mod plan;
pub mod session;
pub mod subnet;
pub mod timing;
