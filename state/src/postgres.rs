//! The `postgres` backend: the state as a row of a table in the platform's merge database.
//!
//! - `ds_state.state (name, lineage, serial, document)`: one row per state; a write is an
//!   `UPDATE ... WHERE serial = <the serial read>`, so of two writers that read the same state only one wins
//!   (the other gets [`StateError::Stale`]).
//! - `ds_state.lock (name, id, info, expires)`: the lease. Taking it is one `INSERT ... ON CONFLICT DO UPDATE
//!   ... WHERE expires < now()`, atomic in the database: free or expired, it is ours; held, we get the
//!   holder. A transaction-level advisory lock serialises the lock operations of one state.
//!
//! The connection lives on a thread of its own (the `postgres` client runs its own small runtime, which must
//! not run inside the caller's async runtime), and calls are handed to it.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::backend::Backend;
use crate::error::{Stale, StateError};
use crate::format::{State, parse, to_bytes};
use crate::lock::{Lease, LockGuard, LockInfo, LockRequest};

type Job = Box<dyn FnOnce(&mut postgres::Client) + Send>;

/// Where the state is: a database and the credentials to reach it (resolved by the caller).
#[derive(Clone)]
pub struct PostgresTarget {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database.
    pub database: String,
    /// User.
    pub user: String,
    /// Password (never shown).
    pub password: String,
    /// The state's name (one database can hold several states).
    pub name: String,
}

/// The `postgres` state backend.
pub struct PostgresBackend {
    display: String,
    jobs: Mutex<mpsc::Sender<Job>>,
    /// Lock ids this process holds (a write is refused while someone else holds the lock).
    held: Arc<Mutex<Vec<String>>>,
}

impl PostgresBackend {
    /// Connects (on its own thread) and makes sure the tables exist.
    pub fn connect(target: PostgresTarget) -> Result<PostgresBackend, StateError> {
        let display = format!(
            "postgres://{}:{}/{}#{}",
            target.host, target.port, target.database, target.name
        );
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let config = {
            let mut c = postgres::Config::new();
            c.host(&target.host)
                .port(target.port)
                .dbname(&target.database)
                .user(&target.user)
                .password(&target.password)
                .application_name("ds state")
                .connect_timeout(Duration::from_secs(10));
            c
        };
        std::thread::Builder::new()
            .name("ds-state-postgres".into())
            .spawn(move || {
                let mut client = match config.connect(postgres::NoTls) {
                    Ok(client) => client,
                    Err(e) => {
                        let _ = ready_tx.send(Err(describe(&e)));
                        return;
                    }
                };
                let setup = client.batch_execute(
                    "CREATE SCHEMA IF NOT EXISTS ds_state; \
                     CREATE TABLE IF NOT EXISTS ds_state.state (name text PRIMARY KEY, lineage text NOT NULL, \
                       serial bigint NOT NULL, document bytea NOT NULL, written_at timestamptz NOT NULL DEFAULT now()); \
                     CREATE TABLE IF NOT EXISTS ds_state.lock (name text PRIMARY KEY, id text NOT NULL, \
                       info text NOT NULL, expires timestamptz NOT NULL)",
                );
                let _ = ready_tx.send(setup.map_err(|e| describe(&e)));
                for job in inbox {
                    job(&mut client);
                }
            })
            .map_err(|source| io_error(&display, "start the state connection", source))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                return Err(io_error(
                    &display,
                    "connect to the state database",
                    std::io::Error::other(message),
                ));
            }
            Err(_) => {
                return Err(io_error(
                    &display,
                    "connect to the state database",
                    std::io::Error::other("the connection thread ended"),
                ));
            }
        }
        Ok(PostgresBackend {
            display,
            jobs: Mutex::new(jobs),
            held: Arc::new(Mutex::new(Vec::new())),
        })
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(&self.display)
    }

    /// Runs `f` on the connection's thread and waits for its result.
    fn call<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T, StateError> {
        call(&self.display, &self.jobs, what, f)
    }

    fn name(&self) -> String {
        self.display.rsplit('#').next().unwrap_or("").to_string()
    }

    fn stored_lock(&self) -> Result<Option<LockInfo>, StateError> {
        let name = self.name();
        let row = self.call("read the state lock", move |c| {
            c.query_opt("SELECT info FROM ds_state.lock WHERE name = $1", &[&name])
        })?;
        match row {
            None => Ok(None),
            Some(row) => {
                let text: String = row.get(0);
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| StateError::LockCorrupt {
                        path: self.path(),
                        message: e.to_string(),
                    })
            }
        }
    }
}

/// Hands `f` to the connection's thread and waits for its result.
fn call<T: Send + 'static>(
    display: &str,
    jobs: &Mutex<mpsc::Sender<Job>>,
    what: &'static str,
    f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error> + Send + 'static,
) -> Result<T, StateError> {
    let gone = || {
        io_error(
            display,
            what,
            std::io::Error::other("the connection thread ended"),
        )
    };
    let (tx, rx) = mpsc::channel();
    let job: Job = Box::new(move |client| {
        let _ = tx.send(f(client));
    });
    jobs.lock()
        .map_err(|_| gone())?
        .send(job)
        .map_err(|_| gone())?;
    rx.recv()
        .map_err(|_| gone())?
        .map_err(|e| io_error(display, what, std::io::Error::other(describe(&e))))
}

fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

fn io_error(display: &str, action: &'static str, source: std::io::Error) -> StateError {
    StateError::Io {
        path: PathBuf::from(display),
        action,
        source,
    }
}

struct PgLease {
    display: String,
    name: String,
    jobs: Mutex<mpsc::Sender<Job>>,
    held: Arc<Mutex<Vec<String>>>,
}

impl PgLease {
    fn call<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T, StateError> {
        call(&self.display, &self.jobs, what, f)
    }
}

impl Lease for PgLease {
    fn renew(&self, info: &LockInfo) -> Result<(), StateError> {
        let (name, id) = (self.name.clone(), info.id.clone());
        let text = serde_json::to_string(info).unwrap_or_default();
        let expires = info.expires;
        let updated = self.call("renew the state lock", move |c| {
            c.execute(
                "UPDATE ds_state.lock SET info = $3, expires = $4 WHERE name = $1 AND id = $2",
                &[&name, &id, &text, &expires],
            )
        })?;
        if updated == 1 {
            Ok(())
        } else {
            Err(StateError::LockLost {
                path: PathBuf::from(&self.display),
                id: info.id.clone(),
                holder: None,
            })
        }
    }

    fn release(&self, id: &str) -> Result<(), StateError> {
        let (name, owned) = (self.name.clone(), id.to_string());
        self.call("release the state lock", move |c| {
            c.execute(
                "DELETE FROM ds_state.lock WHERE name = $1 AND id = $2",
                &[&name, &owned],
            )
        })?;
        if let Ok(mut held) = self.held.lock() {
            held.retain(|h| h != id);
        }
        Ok(())
    }
}

impl Backend for PostgresBackend {
    fn read(&self) -> Result<Option<State>, StateError> {
        let name = self.name();
        let row = self.call("read the state", move |c| {
            c.query_opt(
                "SELECT document FROM ds_state.state WHERE name = $1",
                &[&name],
            )
        })?;
        match row {
            None => Ok(None),
            Some(row) => {
                let bytes: Vec<u8> = row.get(0);
                parse(&bytes, &self.path()).map(Some)
            }
        }
    }

    fn write(&self, state: &mut State) -> Result<(), StateError> {
        // Refused while someone else holds an unexpired lock.
        if let Some(lock) = self.stored_lock()?
            && !lock.is_expired(SystemTime::now())
            && !self
                .held
                .lock()
                .map(|h| h.contains(&lock.id))
                .unwrap_or(false)
        {
            return Err(StateError::Locked {
                path: self.path(),
                info: Box::new(lock),
            });
        }
        let current = self.read()?;
        match &current {
            Some(stored) if stored.lineage != state.lineage => {
                return Err(StateError::Stale {
                    path: self.path(),
                    reason: Stale::Lineage {
                        read: state.lineage.clone(),
                        stored: stored.lineage.clone(),
                    },
                });
            }
            Some(stored) if stored.serial != state.serial => {
                return Err(StateError::Stale {
                    path: self.path(),
                    reason: Stale::Serial {
                        read: state.serial,
                        stored: stored.serial,
                    },
                });
            }
            Some(stored) if stored.model == state.model && stored.resources == state.resources => {
                return Ok(());
            }
            _ => {}
        }
        let read_serial = state.serial;
        state.serial += 1;
        let bytes = to_bytes(state);
        let (name, lineage, serial) = (self.name(), state.lineage.clone(), state.serial as i64);
        let expected = read_serial as i64;
        let exists = current.is_some();
        let written = self.call("write the state", move |c| {
            if exists {
                c.execute(
                    "UPDATE ds_state.state SET serial = $3, document = $4, written_at = now() \
                     WHERE name = $1 AND lineage = $2 AND serial = $5",
                    &[&name, &lineage, &serial, &bytes, &expected],
                )
            } else {
                c.execute(
                    "INSERT INTO ds_state.state (name, lineage, serial, document) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (name) DO NOTHING",
                    &[&name, &lineage, &serial, &bytes],
                )
            }
        });
        match written {
            Ok(1) => Ok(()),
            Ok(_) => {
                state.serial = read_serial;
                let stored = self.read()?.map_or(0, |s| s.serial);
                Err(StateError::Stale {
                    path: self.path(),
                    reason: Stale::Serial {
                        read: read_serial,
                        stored,
                    },
                })
            }
            Err(e) => {
                state.serial = read_serial;
                Err(e)
            }
        }
    }

    fn lock(&self, request: &LockRequest) -> Result<LockGuard, StateError> {
        let info = LockInfo::new(request, SystemTime::now());
        let text = serde_json::to_string(&info).unwrap_or_default();
        let (name, id, expires) = (self.name(), info.id.clone(), info.expires);
        let taken = self.call("take the state lock", move |c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock(hashtext('ds_state.' || $1))", &[&name])?;
            let taken = tx.execute(
                "INSERT INTO ds_state.lock (name, id, info, expires) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET id = EXCLUDED.id, info = EXCLUDED.info, expires = EXCLUDED.expires \
                 WHERE ds_state.lock.expires < now()",
                &[&name, &id, &text, &expires],
            )?;
            tx.commit()?;
            Ok(taken)
        })?;
        if taken != 1 {
            let holder = self
                .stored_lock()?
                .ok_or_else(|| StateError::LockContended { path: self.path() })?;
            return Err(StateError::Locked {
                path: self.path(),
                info: Box::new(holder),
            });
        }
        if let Ok(mut held) = self.held.lock() {
            held.push(info.id.clone());
        }
        let handle = PgLease {
            display: self.display.clone(),
            name: self.name(),
            jobs: Mutex::new(
                self.jobs
                    .lock()
                    .map_err(|_| {
                        io_error(
                            &self.display,
                            "take the state lock",
                            std::io::Error::other("poisoned"),
                        )
                    })?
                    .clone(),
            ),
            held: Arc::clone(&self.held),
        };
        Ok(LockGuard::new(info, request.lease, Box::new(handle)))
    }

    fn lock_info(&self) -> Result<Option<LockInfo>, StateError> {
        self.stored_lock()
    }

    fn force_unlock(&self, id: Option<&str>) -> Result<Option<LockInfo>, StateError> {
        let Some(current) = self.stored_lock()? else {
            return Ok(None);
        };
        if let Some(id) = id
            && id != current.id
        {
            return Err(StateError::LockMismatch {
                path: self.path(),
                requested: id.to_string(),
                info: Box::new(current),
            });
        }
        let (name, held) = (self.name(), current.id.clone());
        self.call("remove the state lock", move |c| {
            c.execute(
                "DELETE FROM ds_state.lock WHERE name = $1 AND id = $2",
                &[&name, &held],
            )
        })?;
        Ok(Some(current))
    }

    fn describe(&self) -> String {
        format!("postgres state {}", self.display)
    }
}
