//! The thin command line on top of the engine: arguments, reading the user's files, one function per
//! command, what gets printed (and plotted), and how a command's failure becomes an exit code.

mod args;
mod bar;
mod commands;
mod complete;
mod context;
pub mod exit;
pub(crate) mod load;
mod output;
mod plot;
pub mod report;
mod verbs;

pub use args::{Cli, Command, ImageCommand, MeasureCommand};
pub use commands::{run, COMPLETE_VAR};
pub use exit::{error_chain, Failure};
pub use load::{load_manifest, load_scenario};
