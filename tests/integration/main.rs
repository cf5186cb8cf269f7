//! Integration tests against the real Docker engine and real bitcoind: every test brings up its own
//! uniquely named cluster, checks what the nodes themselves report, and removes everything it made —
//! also when it fails (a drop guard tears the cluster down). One test binary, a module per topic.

use regbox::cluster::{self, Cluster, UpOptions};
use regbox::manifest::{self, ClusterSpec};
use regbox::partition::{CutMode, PartitionKind};
use regbox::progress::Progress;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[path = "../support/mod.rs"]
mod support;
use support::*;

mod cli;
mod clocks;
mod core_images;
mod disks;
mod heavy;
mod images;
mod lifecycle;
mod links;
mod locking;
mod operator;
mod operator_tls;
mod page;
mod partitions;
mod reset;
mod resources;
mod scenarios;
mod topology;
