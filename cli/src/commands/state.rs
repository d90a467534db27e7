//! `ds state list|show|rm|unlock`: inspect and repair the recorded state.

use std::path::Path;

use anyhow::bail;
use clap::Subcommand;

use super::StateArgs;
use crate::{EXIT_ERROR, EXIT_OK, write_stdout};

#[derive(Subcommand)]
pub(crate) enum StateCommand {
    /// List the address of every recorded resource
    List {
        #[command(flatten)]
        state: StateArgs,
    },
    /// Show one recorded resource: its type, provider, attributes and dependencies
    Show {
        /// The resource address
        address: String,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Forget resources: ds stops managing them (nothing is deleted in the real systems)
    Rm {
        /// The resource addresses
        #[arg(required = true)]
        addresses: Vec<String>,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Remove the state lock left by a process that is gone
    #[command(
        long_about = "Remove the state lock. Give the lock id shown in the error that named the lock \
(safer: it only removes that lock); without an id, any lock is removed. Only do this when the process that \
holds the lock is gone: a lock left by a dead process is also taken over automatically once its lease expires."
    )]
    Unlock {
        /// The lock id to remove
        id: Option<String>,
        #[command(flatten)]
        state: StateArgs,
    },
}

fn unknown_address(address: &str, recorded: &state::State) -> anyhow::Error {
    let closest = planner::plan::closest(
        address,
        recorded.resources.iter().map(|r| r.address.as_str()),
    );
    if closest.is_empty() {
        anyhow::anyhow!("the state holds no resource `{address}` (it is empty)")
    } else {
        anyhow::anyhow!(
            "the state holds no resource `{address}`; the closest are {}",
            closest
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

pub(crate) fn run(dir: &Path, command: &StateCommand) -> anyhow::Result<u8> {
    match command {
        StateCommand::List { state } => {
            let backend = super::backend_for_dir(dir, state)?;
            let recorded = backend.read()?.unwrap_or_default();
            let out: String = recorded
                .resources
                .iter()
                .map(|r| format!("{}\n", r.address))
                .collect();
            write_stdout(&out)?;
            Ok(EXIT_OK)
        }
        StateCommand::Show { address, state } => {
            let backend = super::backend_for_dir(dir, state)?;
            let recorded = backend.read()?.unwrap_or_default();
            let Some(resource) = recorded.resource(address) else {
                return Err(unknown_address(address, &recorded));
            };
            write_stdout(&(serde_json::to_string_pretty(resource)? + "\n"))?;
            Ok(EXIT_OK)
        }
        StateCommand::Rm { addresses, state } => {
            let backend = super::backend_for_dir(dir, state)?;
            let _lock = super::lock(&*backend, "state rm")?;
            let Some(mut recorded) = backend.read()? else {
                bail!("there is no state at {}", backend.describe());
            };
            for address in addresses {
                if recorded.resource(address).is_none() {
                    return Err(unknown_address(address, &recorded));
                }
            }
            for address in addresses {
                recorded.remove(address);
            }
            backend.write(&mut recorded)?;
            eprintln!(
                "Removed {} resource(s) from the state (serial {}); the real objects are untouched.",
                addresses.len(),
                recorded.serial
            );
            Ok(EXIT_OK)
        }
        StateCommand::Unlock { id, state } => {
            let backend = super::backend_for_dir(dir, state)?;
            match backend.force_unlock(id.as_deref())? {
                Some(info) => {
                    eprintln!(
                        "Removed the lock {} held by {} ({}).",
                        info.id, info.who, info.operation
                    );
                    Ok(EXIT_OK)
                }
                None => {
                    eprintln!("The state at {} is not locked.", backend.describe());
                    Ok(EXIT_ERROR)
                }
            }
        }
    }
}
