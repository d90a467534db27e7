//! The apply walk: carries out a plan's changes through the providers, in dependency order, at bounded
//! parallelism, recording each finished resource in the state.
//!
//! Creates, updates and replaces wait for the changes of what they depend on; deletes wait for the deletes
//! of what depends on them (reverse order). A failure stops the changes that wait on it, directly or not;
//! independent branches finish. Cancelling stops starting new changes and waits for those in flight. The
//! state is written as resources finish (at most once a second, and always at the end), so a crash loses
//! at most a second of record, and every provider's apply is idempotent, so a rerun converges.

use std::sync::Arc;
use std::time::{Duration, Instant};

use providers::Action;
use providers::live::{Change, Ctx};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::planfile::PlanFile;

/// How often the state is written while an apply runs.
const PERSIST_EVERY: Duration = Duration::from_secs(1);

/// What happened to one resource, as it happens.
#[derive(Debug, Clone)]
pub enum Event {
    /// A change started.
    Started {
        /// The resource.
        address: String,
        /// What is done to it.
        action: Action,
    },
    /// A change finished.
    Done {
        /// The resource.
        address: String,
        /// What was done.
        action: Action,
        /// How long it took.
        elapsed: Duration,
    },
    /// A change failed.
    Failed {
        /// The resource.
        address: String,
        /// Why.
        error: String,
    },
    /// A change was not started: something it waits for failed, or the apply was cancelled.
    Skipped {
        /// The resource.
        address: String,
        /// Why.
        reason: String,
    },
}

/// The result of an apply.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Resources changed, with their action.
    pub done: Vec<(String, Action)>,
    /// Resources whose change failed, with why.
    pub failed: Vec<(String, String)>,
    /// Resources not changed because of a failure or a cancellation, with why.
    pub skipped: Vec<(String, String)>,
    /// Whether the apply was cancelled.
    pub cancelled: bool,
}

/// Why an apply could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Some resource types have no provider that can act yet.
    #[error(
        "no provider can apply {} yet: plan with `--target` or `--exclude` to leave them out",
        kinds.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
    )]
    Unsupported {
        /// The types.
        kinds: Vec<String>,
    },
    /// A change's attributes do not have its kind's shape (a hand-edited plan file, say).
    #[error("`{address}` cannot be applied: {reason}")]
    Invalid {
        /// The resource.
        address: String,
        /// What is wrong.
        reason: String,
    },
}

struct Item {
    address: String,
    kind: &'static dyn providers::ResourceKind,
    action: Action,
    after: Option<Value>,
    before: Option<Value>,
    container: Option<Value>,
    dependencies: Vec<String>,
}

/// Checks that every change of a plan can be applied by a provider, and that its attributes have their
/// kind's typed shape (pure: nothing is changed before every change passes).
pub fn check_supported(plan: &PlanFile) -> Result<(), ApplyError> {
    let mut kinds: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| providers::kind(&c.kind).and_then(|k| k.live()).is_none())
        .map(|c| c.kind.clone())
        .collect();
    kinds.sort();
    kinds.dedup();
    if !kinds.is_empty() {
        return Err(ApplyError::Unsupported { kinds });
    }
    for change in &plan.changes {
        let kind = providers::kind(&change.kind).expect("checked above");
        if let Some(after) = &change.after {
            kind.validate(after).map_err(|reason| ApplyError::Invalid {
                address: change.address.clone(),
                reason,
            })?;
        }
    }
    Ok(())
}

/// Applies `plan`, recording results in `state` and calling `persist` to write it (at most once a second,
/// and at the end). `cancel` becoming true stops new changes from starting.
///
/// Errors: the last write's, when it fails (an earlier failed write is retried by the next); `state` then
/// holds every result, for the caller to save elsewhere.
pub async fn apply(
    plan: PlanFile,
    state: &mut state::State,
    persist: &mut (dyn FnMut(&mut state::State) -> Result<(), state::StateError> + Send),
    ctx: Arc<Ctx>,
    parallelism: usize,
    events: &(dyn Fn(Event) + Sync),
    mut cancel: watch::Receiver<bool>,
) -> Result<Outcome, state::StateError> {
    check_supported(&plan).expect("the caller checked that every kind can be applied");
    let items: Vec<Item> = plan
        .changes
        .into_iter()
        .map(|c| {
            let kind = providers::kind(&c.kind).expect("checked above");
            let action = match c.action.as_str() {
                "create" => Action::Create,
                "update" => Action::Update,
                "replace" => Action::Replace,
                _ => Action::Delete,
            };
            let container = kind
                .container(&c.address)
                .and_then(|container| state.resource(&container).map(|r| r.attributes.clone()));
            Item {
                address: c.address,
                kind,
                action,
                after: c.after,
                before: c.before,
                container,
                dependencies: c.dependencies,
            }
        })
        .collect();
    // A container created or changed by this plan: its new attributes say where its content lives.
    let mut items = items;
    for i in 0..items.len() {
        if let Some(container) = items[i].kind.container(&items[i].address)
            && let Some(j) = items.iter().position(|c| c.address == container)
            && let Some(after) = items[j].after.clone()
        {
            items[i].container = Some(after);
        }
    }
    let position: std::collections::HashMap<&str, usize> = items
        .iter()
        .enumerate()
        .map(|(i, c)| (c.address.as_str(), i))
        .collect();
    // waits[i]: how many changes i waits for; unblocks[j]: the changes waiting for j.
    let mut waits = vec![0usize; items.len()];
    let mut unblocks: Vec<Vec<usize>> = vec![Vec::new(); items.len()];
    for (i, item) in items.iter().enumerate() {
        let mut deps = item.dependencies.clone();
        if let Some(container) = item.kind.container(&item.address) {
            deps.push(container);
        }
        for dep in deps {
            let Some(&j) = position.get(dep.as_str()) else {
                continue;
            };
            let (deleting_i, deleting_j) = (
                items[i].action == Action::Delete,
                items[j].action == Action::Delete,
            );
            match (deleting_i, deleting_j) {
                // i needs j: j first.
                (false, false) => {
                    waits[i] += 1;
                    unblocks[j].push(i);
                }
                // Both go: i (which needs j) goes first.
                (true, true) => {
                    waits[j] += 1;
                    unblocks[i].push(j);
                }
                _ => {}
            }
        }
    }
    let items: Arc<Vec<Item>> = Arc::new(items);
    let mut ready: Vec<usize> = (0..items.len()).filter(|&i| waits[i] == 0).rev().collect();
    let mut outcome = Outcome::default();
    let mut running: JoinSet<(usize, Instant, Result<Option<Value>, String>)> = JoinSet::new();
    let mut settled = vec![false; items.len()];
    let mut last_persist = Instant::now();
    let mut dirty = false;
    let parallelism = parallelism.max(1);

    loop {
        while running.len() < parallelism && !outcome.cancelled {
            let Some(i) = ready.pop() else { break };
            let item = &items[i];
            events(Event::Started {
                address: item.address.clone(),
                action: item.action,
            });
            let items = Arc::clone(&items);
            let ctx = Arc::clone(&ctx);
            running.spawn(async move {
                let item = &items[i];
                let live = item.kind.live().expect("checked above");
                let started = Instant::now();
                let result = live
                    .apply(
                        &ctx,
                        Change {
                            address: &item.address,
                            action: item.action,
                            desired: item.after.as_ref(),
                            prior: item.before.as_ref(),
                            container: item.container.as_ref(),
                        },
                    )
                    .await
                    .map_err(|e| e.to_string());
                (i, started, result)
            });
        }
        if running.is_empty() {
            break;
        }
        let joined = tokio::select! {
            joined = running.join_next() => joined,
            changed = cancel.changed(), if !outcome.cancelled => {
                if changed.is_ok() && *cancel.borrow() {
                    outcome.cancelled = true;
                }
                continue;
            }
        };
        let Some(joined) = joined else { break };
        // A provider that panicked is a bug: let it surface as one.
        let (i, started, result) = match joined {
            Ok(done) => done,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        };
        settled[i] = true;
        let item = &items[i];
        match result {
            Ok(recorded) => {
                match (item.action, recorded) {
                    (Action::Delete, _) | (_, None) => {
                        state.remove(&item.address);
                    }
                    (_, Some(attributes)) => {
                        state.upsert(crate::plan::record(
                            &item.address,
                            item.kind,
                            attributes,
                            &item.dependencies,
                        ));
                    }
                }
                dirty = true;
                outcome.done.push((item.address.clone(), item.action));
                events(Event::Done {
                    address: item.address.clone(),
                    action: item.action,
                    elapsed: started.elapsed(),
                });
                for &next in &unblocks[i] {
                    waits[next] -= 1;
                    if waits[next] == 0 && !settled[next] {
                        ready.push(next);
                    }
                }
            }
            Err(error) => {
                events(Event::Failed {
                    address: item.address.clone(),
                    error: error.clone(),
                });
                outcome.failed.push((item.address.clone(), error));
                // Everything waiting on it, directly or not, is skipped.
                let mut queue = unblocks[i].clone();
                while let Some(next) = queue.pop() {
                    if settled[next] {
                        continue;
                    }
                    settled[next] = true;
                    let reason = format!("`{}` failed", item.address);
                    events(Event::Skipped {
                        address: items[next].address.clone(),
                        reason: reason.clone(),
                    });
                    outcome.skipped.push((items[next].address.clone(), reason));
                    queue.extend(unblocks[next].iter().copied());
                }
            }
        }
        // A write that fails meanwhile (the backend does not answer) does not stop the changes in flight
        // or the ones waiting: the next write carries it, and the last one's failure is the caller's.
        if dirty && last_persist.elapsed() >= PERSIST_EVERY {
            last_persist = Instant::now();
            if persist(state).is_ok() {
                dirty = false;
            }
        }
    }
    for (i, item) in items.iter().enumerate() {
        if !settled[i] {
            let reason = if outcome.cancelled {
                "the apply was cancelled".to_string()
            } else {
                "what it waits for did not finish".to_string()
            };
            events(Event::Skipped {
                address: item.address.clone(),
                reason: reason.clone(),
            });
            outcome.skipped.push((item.address.clone(), reason));
        }
    }
    if dirty {
        persist(state)?;
    }
    Ok(outcome)
}
