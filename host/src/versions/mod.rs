//! The running version of every function and how it is replaced while the
//! host runs. Triggers check the current version out for one batch or tick;
//! a swap (see [`swap`]) compiles and tests the new version off their path
//! and switches only between two invocations. Knows nothing of Kafka or Delta.

mod swap;
pub mod watch;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use tokio::sync::{OwnedRwLockReadGuard, RwLock};

use crate::runtime::{KafkaMessage, LoadedComponent, World};

pub use swap::{SmokeTest, Swap, SwapError, SwapOptions};

/// Where a version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The manifest's `source`, at start.
    Manifest,
    /// Uploaded through the admin API (`weir deploy`).
    Upload,
    /// Picked up by `weir up --watch` when the built file changed.
    Watch,
    /// Restored by a rollback.
    Rollback,
}

/// One version of a function: the loaded component and when it started.
#[derive(Debug, Clone)]
pub struct Version {
    /// The compiled component (its digest names the exact code).
    pub component: Arc<LoadedComponent>,
    /// When it became the running version.
    pub since: DateTime<Utc>,
    /// How it got there.
    pub origin: Origin,
}

/// The current version checked out for one invocation. While any is held
/// the function cannot switch: a batch runs and commits with one version.
#[derive(Debug)]
pub struct InUse {
    /// The version to invoke.
    pub component: Arc<LoadedComponent>,
    _gate: OwnedRwLockReadGuard<()>,
}

/// A function of the manifest, swappable at invocation boundaries.
#[derive(Debug)]
pub struct Function {
    /// The component id.
    pub id: String,
    /// The world its trigger(s) need; every new version is checked against it.
    pub world: World,
    /// Ids of the triggers that invoke it.
    pub triggers: Vec<String>,
    /// Held shared by every invocation in flight (a whole batch, from invoke
    /// to the last commit, or a cron tick with its publish) and exclusively
    /// for the instant of a switch.
    gate: Arc<RwLock<()>>,
    versions: Mutex<Versions>,
    /// One deploy or rollback at a time per function.
    deploying: tokio::sync::Mutex<()>,
    /// The last batch a transform processed: the smoke test's input.
    last_batch: Mutex<Option<Arc<[KafkaMessage]>>>,
    last_error: Mutex<Option<(DateTime<Utc>, String)>>,
}

#[derive(Debug)]
struct Versions {
    current: Version,
    /// What a rollback restores.
    previous: Option<Version>,
}

impl Function {
    /// A function running `component`, as loaded from the manifest.
    pub fn new(component: Arc<LoadedComponent>, triggers: Vec<String>) -> Self {
        let current = Version {
            since: Utc::now(),
            origin: Origin::Manifest,
            component: Arc::clone(&component),
        };
        Self {
            id: component.id.clone(),
            world: component.world,
            triggers,
            gate: Arc::default(),
            versions: Mutex::new(Versions {
                current,
                previous: None,
            }),
            deploying: tokio::sync::Mutex::default(),
            last_batch: Mutex::default(),
            last_error: Mutex::default(),
        }
    }

    /// Checks the current version out; waits while a switch is under way.
    pub async fn checkout(&self) -> InUse {
        let gate = Arc::clone(&self.gate).read_owned().await;
        InUse {
            component: Arc::clone(&self.lock().current.component),
            _gate: gate,
        }
    }

    /// The running version.
    pub fn current(&self) -> Version {
        self.lock().current.clone()
    }

    /// The version a rollback would restore.
    pub fn previous(&self) -> Option<Version> {
        self.lock().previous.clone()
    }

    /// Keeps `batch` as the input of the next smoke test.
    pub fn remember_batch(&self, batch: Arc<[KafkaMessage]>) {
        *self
            .last_batch
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(batch);
    }

    /// Records a failed invocation for the function list.
    pub fn record_error(&self, message: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Utc::now(), message));
    }

    /// The last failed invocation: when, and why.
    pub fn last_error(&self) -> Option<(DateTime<Utc>, String)> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn last_batch(&self) -> Option<Arc<[KafkaMessage]>> {
        self.last_batch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Versions> {
        self.versions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Every function of the running application, by component id.
#[derive(Debug, Default)]
pub struct Functions(BTreeMap<String, Arc<Function>>);

impl Functions {
    /// Adds `function` under its id.
    pub fn insert(&mut self, function: Function) {
        self.0.insert(function.id.clone(), Arc::new(function));
    }

    /// The function with component id `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<Function>> {
        self.0.get(id)
    }

    /// All functions in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Function>> {
        self.0.values()
    }
}
