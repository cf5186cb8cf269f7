//! What regbox reads of the chain and the nodes: readiness and sync conditions (`wait`), block and
//! transaction propagation (`propagation`), and the raw transactions a measurement sends (`rawtx`).

pub mod propagation;
pub mod rawtx;
pub mod wait;
