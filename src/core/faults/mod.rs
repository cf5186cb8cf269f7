//! The fault vocabulary: what can happen to a node's container (`node`) and its clock (`clock`, with
//! the drift files its init keeps in `faketime`), to its links (`link`:
//! shaping), a node's whole fault plane with its cuts (`plane`), and how a plane is realised in the
//! node's namespace by the fault agent (`rules`), and the CPU and memory limits of a throttled node
//! (`throttle`).

pub mod clock;
pub mod faketime;
pub mod link;
pub mod node;
pub mod plane;
pub mod rules;
pub mod throttle;
