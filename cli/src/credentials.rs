//! Credentials, resolved when `ds` connects: from the environment (`<NAME>_USER`, `<NAME>_PASSWORD`, with
//! NAME upper-cased) or from a credentials directory (`<dir>/<name>/user`, `<dir>/<name>/password`). Only
//! the CLI reads them; they are handed to providers and never printed or stored.

use std::path::PathBuf;

use providers::live::{Credential, Credentials, Sensitive};

/// Where credentials come from, as the model's `platform` block says.
pub(crate) enum Source {
    /// Environment variables.
    Env,
    /// Files in a directory.
    Directory(PathBuf),
}

impl Credentials for Source {
    fn resolve(&self, name: &str) -> Result<Credential, String> {
        match self {
            Source::Env => {
                let prefix = name.to_ascii_uppercase();
                let (user_var, password_var) =
                    (format!("{prefix}_USER"), format!("{prefix}_PASSWORD"));
                match (std::env::var(&user_var), std::env::var(&password_var)) {
                    (Ok(user), Ok(password)) => Ok(Credential {
                        user,
                        password: Sensitive::new(password),
                    }),
                    _ => Err(format!(
                        "credential `{name}` is not set: export {user_var} and {password_var}"
                    )),
                }
            }
            Source::Directory(dir) => {
                let read = |file: &str| {
                    std::fs::read_to_string(dir.join(name).join(file))
                        .map(|s| s.trim_end().to_string())
                };
                match (read("user"), read("password")) {
                    (Ok(user), Ok(password)) => Ok(Credential {
                        user,
                        password: Sensitive::new(password),
                    }),
                    _ => Err(format!(
                        "credential `{name}` is not in {}: it needs the files `{name}/user` and `{name}/password`",
                        dir.display()
                    )),
                }
            }
        }
    }
}

/// The credential source of a model: the first platform (by name) that sets `credentials`, else the
/// environment.
pub(crate) fn source(model: &planner::model::Model, dir: &std::path::Path) -> Source {
    let mut platforms: Vec<&planner::model::Platform> = model.platforms.iter().collect();
    platforms.sort_by(|a, b| a.name.value.cmp(&b.name.value));
    for platform in platforms {
        if let Some(credentials) = &platform.credentials {
            return match &credentials.value {
                planner::model::CredentialSource::Env => Source::Env,
                planner::model::CredentialSource::Directory(path) => {
                    Source::Directory(dir.join(path.clone().unwrap_or_default()))
                }
            };
        }
    }
    Source::Env
}
