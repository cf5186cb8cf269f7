//! The one facade over the Docker engine: every Docker call regbox makes goes through here, and only
//! this folder uses bollard. It knows Docker, not regbox: resources are found by a label filter the
//! caller builds, and containers are made from a [`ContainerSpec`] the caller's recipe fills in.
//!
//! By job: `api` (the seam: what regbox asks of an engine, as traits), `routing` (the real engines and
//! which one a container lives on), `containers`, `networks` (and volumes), `images`, `swarm`
//! (membership of a multi-host manifest's hosts); `fake` is the in-memory engine unit tests run on.

mod api;
mod containers;
mod error;
#[cfg(test)]
pub(crate) mod fake;
mod images;
mod networks;
mod routing;
mod swarm;
mod types;

use std::ops::Deref;
use std::sync::Arc;

pub use api::Api;
pub use error::DockerError;
pub use swarm::{form_swarm, leave_swarm, swarm_members, HostEngine, SwarmMember};
pub use types::{ContainerEvent, ContainerInfo, ContainerSpec, Net, NetworkInfo};

use error::Result;
use routing::Engines;

/// Handle to the Docker engine — or to the engines of one swarm (a multi-host cluster). Cheap to
/// clone; behind it are the real engines or, in unit tests, the fake.
#[derive(Clone)]
pub struct Docker(Arc<dyn Api>);

impl Docker {
    /// Connects to the engine named by `DOCKER_HOST` (or the local socket) and checks that it answers.
    /// No API version is pinned: the daemon answers at its own.
    pub async fn connect() -> Result<Docker> {
        Ok(Docker(Arc::new(Engines::connect().await?)))
    }

    /// Connects to the engines of a multi-host cluster, first one first, and checks what a cluster
    /// across them needs: each answers, each is an active member of a swarm, the first is a manager
    /// (it creates the overlays), and all are members of the first one's swarm.
    pub async fn connect_hosts(hosts: &[HostEngine]) -> Result<Docker> {
        Ok(Docker(Arc::new(Engines::connect_hosts(hosts).await?)))
    }

    /// A handle on any implementation of the seam (the fake, in unit tests).
    pub fn from_api(api: Arc<dyn Api>) -> Docker {
        Docker(api)
    }
}

impl Deref for Docker {
    type Target = dyn Api + 'static;

    fn deref(&self) -> &(dyn Api + 'static) {
        &*self.0
    }
}
