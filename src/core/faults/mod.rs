//! The fault vocabulary: what can happen to a node's container (`node`) and its clock (`clock`), to its links (`link`:
//! shaping), a node's whole fault plane with its cuts (`plane`), and how a plane is realised in the
//! node's namespace by the fault agent (`rules`).

pub mod clock;
pub mod link;
pub mod node;
pub mod plane;
pub mod rules;
