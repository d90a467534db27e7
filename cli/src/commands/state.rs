//! `ds state list|show|rm|unlock`: inspect and repair the recorded state.

use std::path::Path;

use anyhow::{Context, bail};
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
    /// Record a saved state document at the backend (the file an apply writes when it cannot save its state)
    #[command(
        long_about = "Record FILE, a state document, as the state at the backend. An apply that made its \
changes but could not write the state (the backend stopped answering) saves what it did to \
ds-errored.state.json in the working directory: when the backend answers again, `ds state push \
ds-errored.state.json` records it. The file must come from the state stored there (same lineage and serial); \
--force records it anyway."
    )]
    Push {
        /// The state document, e.g. ds-errored.state.json
        file: std::path::PathBuf,
        /// Record it even when the stored state is another one or was written since
        #[arg(long)]
        force: bool,
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

/// `ds state push FILE`: records a saved state document (an errored apply's) at the backend.
fn push(dir: &Path, file: &Path, force: bool, args: &StateArgs) -> anyhow::Result<u8> {
    let text = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let mut pushed = state::parse(&text, file)?;
    let backend = super::backend_for_dir(dir, args)?;
    let _lock = super::lock(&*backend, "state push")?;
    let stored = backend.read()?;
    match &stored {
        None => pushed.serial = 0,
        Some(stored) => {
            if !force && stored.lineage != pushed.lineage {
                bail!(
                    "{} holds another state (lineage {}, the file's is {}): nothing pushed; --force replaces it",
                    backend.describe(),
                    stored.lineage,
                    pushed.lineage
                );
            }
            if !force && stored.serial != pushed.serial {
                bail!(
                    "the state at {} was written since {} was made from it (serial {} there, {} in the file): \
                     nothing pushed; compare them with `ds state list`, and --force if the file is the one to keep",
                    backend.describe(),
                    file.display(),
                    stored.serial,
                    pushed.serial
                );
            }
            pushed.serial = stored.serial;
            pushed.lineage = stored.lineage.clone();
        }
    }
    backend.write(&mut pushed)?;
    eprintln!(
        "Recorded {} at {} (serial {}, {} resources).",
        file.display(),
        backend.describe(),
        pushed.serial,
        pushed.resources.len()
    );
    Ok(EXIT_OK)
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
        StateCommand::Push { file, force, state } => push(dir, file, *force, state),
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
