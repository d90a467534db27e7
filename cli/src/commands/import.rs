//! `ds import ADDR [ID]`: adopt an object that already exists into the state.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};

use super::StateArgs;
use crate::EXIT_OK;

#[derive(clap::Args)]
pub(crate) struct ImportArgs {
    /// The address the model gives the object, e.g. `postgres_table.zero_live.crm_db__customers__merge`
    address: String,
    /// The object's own name where the provider needs one; for Postgres objects the address names it
    /// already (`zero_live.crm_db__customers__merge`), and an ID, when given, must agree
    id: Option<String>,
    #[command(flatten)]
    state: StateArgs,
}

pub(crate) fn run(dir: &Path, args: &ImportArgs) -> anyhow::Result<u8> {
    let loaded = super::load_valid(dir)?;
    let graph = planner::compile::compile(&loaded.model)?;
    let Some(resource) = graph.get(&args.address) else {
        let closest =
            planner::plan::closest(&args.address, graph.resources().map(|r| r.address.as_str()));
        bail!(
            "the model has no resource `{}`: import adopts an object the model describes; the closest are {}",
            args.address,
            closest
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let name = args.address.split_once('.').map_or("", |(_, n)| n);
    if let Some(id) = &args.id
        && id != name
    {
        bail!(
            "ID `{id}` does not name the object at `{}`: for this provider the ID is `{name}` (or leave it out)",
            args.address
        );
    }
    let Some(live) = resource.kind.live() else {
        bail!(
            "no provider can read `{}` yet, so it cannot be imported",
            resource.kind.name()
        );
    };
    let container = resource
        .kind
        .container(&resource.address)
        .and_then(|c| graph.get(&c))
        .map(|c| c.attributes.clone());
    let backend = super::backend(dir, Some(&loaded.model), &args.state)?;
    let _lock = super::lock(&*backend, "import")?;
    let mut recorded = state::Backend::read(&*backend)?.unwrap_or_default();
    if recorded.resource(&args.address).is_some() {
        bail!(
            "`{}` is already in the state: `ds state rm` it first to import it again",
            args.address
        );
    }
    let credentials = crate::credentials::source(&loaded.model, dir);
    let ctx = providers::live::Ctx::new(Arc::new(credentials));
    let found = super::runtime()?
        .block_on(live.read(
            &ctx,
            &resource.address,
            &resource.attributes,
            container.as_ref(),
        ))
        .with_context(|| format!("failed to read `{}`", args.address))?;
    let Some(attributes) = found else {
        bail!(
            "there is no object at `{}` to import: `ds apply` creates it",
            args.address
        );
    };
    let mut entry = planner::plan::recorded(resource);
    entry.attributes = attributes;
    recorded.upsert(entry);
    state::Backend::write(&*backend, &mut recorded)?;
    eprintln!(
        "Imported `{}` (state serial {}): `ds plan` shows how it differs from the model.",
        args.address, recorded.serial
    );
    Ok(EXIT_OK)
}
