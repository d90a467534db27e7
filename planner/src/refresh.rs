//! Refresh: read every recorded resource from the real systems, and tell what changed outside `ds` (drift).
//!
//! Reads run at bounded parallelism through the providers' [`providers::live::Live::read`]; resource kinds
//! no provider can read yet keep their recorded attributes. The result is the state as reality has it,
//! which a plan then compares with the model.

use std::sync::Arc;

use providers::live::Ctx;
use providers::{AttributeChange, kind};
use serde_json::Value;
use tokio::task::JoinSet;

/// One resource that differs from its record.
#[derive(Debug, Clone)]
pub struct Drift {
    /// The resource.
    pub address: String,
    /// Its type.
    pub kind: String,
    /// `changed` (attributes differ) or `deleted` (the object is gone).
    pub what: &'static str,
    /// The attributes that differ (recorded → real), for `changed`.
    pub attributes: Vec<AttributeChange>,
}

/// A resource to read: address, type, recorded attributes, its container's attributes.
type ToRead = (String, String, Value, Option<Value>);

/// Reads every recorded resource that a provider can read; returns the state as reality has it and the
/// drift. A read that fails fails the refresh: planning against half-read reality would mislead.
/// A container the state does not record (an imported table whose schema is not managed yet) is looked up
/// in `desired` (the compiled model).
pub async fn refresh(
    recorded: &state::State,
    desired: Option<&crate::compile::Graph>,
    ctx: Arc<Ctx>,
    parallelism: usize,
) -> Result<(state::State, Vec<Drift>), providers::live::ProviderError> {
    let mut reads: JoinSet<Result<(usize, Option<Value>), providers::live::ProviderError>> =
        JoinSet::new();
    let resources: Arc<Vec<ToRead>> = Arc::new(
        recorded
            .resources
            .iter()
            .filter(|r| kind(&r.kind).and_then(|k| k.live()).is_some())
            .map(|r| {
                let container = kind(&r.kind)
                    .and_then(|k| k.container(&r.address))
                    .and_then(|c| {
                        recorded
                            .resource(&c)
                            .map(|c| c.attributes.clone())
                            .or_else(|| {
                                desired
                                    .and_then(|g| g.get(&c))
                                    .map(|c| c.attributes.clone())
                            })
                    });
                (
                    r.address.clone(),
                    r.kind.clone(),
                    r.attributes.clone(),
                    container,
                )
            })
            .collect(),
    );
    let mut results: Vec<Option<Option<Value>>> = vec![None; resources.len()];
    let mut next = 0;
    let parallelism = parallelism.max(1);
    loop {
        while reads.len() < parallelism && next < resources.len() {
            let i = next;
            next += 1;
            let resources = Arc::clone(&resources);
            let ctx = Arc::clone(&ctx);
            reads.spawn(async move {
                let (address, kind_name, prior, container) = &resources[i];
                let live = kind(kind_name)
                    .and_then(|k| k.live())
                    .expect("filtered above");
                let now = live.read(&ctx, address, prior, container.as_ref()).await?;
                Ok((i, now))
            });
        }
        let Some(joined) = reads.join_next().await else {
            break;
        };
        let (i, now) = match joined {
            Ok(result) => result?,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        };
        results[i] = Some(now);
    }
    let mut refreshed = recorded.clone();
    let mut drift = Vec::new();
    for (i, (address, kind_name, prior, _)) in resources.iter().enumerate() {
        match results[i].take().flatten() {
            None => {
                refreshed.remove(address);
                drift.push(Drift {
                    address: address.clone(),
                    kind: kind_name.clone(),
                    what: "deleted",
                    attributes: Vec::new(),
                });
            }
            Some(now) if &now != prior => {
                let mut attributes = Vec::new();
                providers::kind::diff_values("", &now, prior, &mut attributes);
                let sensitive = kind(kind_name).map_or(&[][..], |k| k.sensitive());
                for change in &mut attributes {
                    let top = change.path.split('.').next().unwrap_or("");
                    change.sensitive = sensitive.contains(&top);
                }
                if let Some(r) = refreshed
                    .resources
                    .iter_mut()
                    .find(|r| &r.address == address)
                {
                    r.attributes = now;
                }
                drift.push(Drift {
                    address: address.clone(),
                    kind: kind_name.clone(),
                    what: "changed",
                    attributes,
                });
            }
            Some(_) => {}
        }
    }
    Ok((refreshed, drift))
}
