//! What each worker last did, for `/readyz` and the logs: a server that cannot reach its mail
//! servers still starts, and says clearly which part is failing and why.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Ok,
    Degraded,
    Failing,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComponentStatus {
    pub health: Health,
    pub detail: String,
    /// Unix seconds of the last update.
    pub at: i64,
}

/// Shared, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard(Arc<RwLock<BTreeMap<String, ComponentStatus>>>);

impl StatusBoard {
    pub fn set(
        &self,
        component: impl Into<String>,
        health: Health,
        detail: impl Into<String>,
        at: i64,
    ) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        map.insert(
            component.into(),
            ComponentStatus {
                health,
                detail: detail.into(),
                at,
            },
        );
    }

    pub fn snapshot(&self) -> BTreeMap<String, ComponentStatus> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
