//! What regbox reads of the chain and the nodes: readiness and sync conditions (`wait`), block and
//! transaction propagation (`propagation`), the raw transactions a measurement sends (`rawtx`), and
//! the fork view of tips, branches and reorgs (`forks`).

pub mod forks;
pub mod propagation;
pub mod rawtx;
pub mod wait;
