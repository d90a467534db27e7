//! Test support for the integration suite in `it/`: locating the `ds` binary, model fixtures and the
//! corpus under `data/`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The `ds` binary of this build, built first if needed (`cargo test -p tests` does not build it).
pub fn ds_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("target"));
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "cli", "--bin", "ds"])
            .args((profile == "release").then_some("--release"))
            .current_dir(root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the ds binary failed");
        target.join(profile).join("ds")
    })
}

/// The PostgreSQL server that `scripts/stack up` started, from the environment or `.stack/env`.
pub struct Postgres {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// A superuser.
    pub user: String,
    /// Its password.
    pub password: String,
}

fn stack_env() -> std::collections::HashMap<String, String> {
    let mut vars: std::collections::HashMap<String, String> = std::env::vars().collect();
    if let Ok(text) = std::fs::read_to_string(root().join(".stack/env")) {
        for line in text.lines() {
            if let Some((key, value)) = line.strip_prefix("export ").and_then(|l| l.split_once('='))
            {
                vars.entry(key.to_string())
                    .or_insert_with(|| value.trim_matches('\'').trim_matches('"').to_string());
            }
        }
    }
    vars
}

/// The stack's PostgreSQL. Without it, a test fails when `CI` is set and is skipped otherwise (`None`).
pub fn postgres() -> Option<&'static Postgres> {
    static PG: OnceLock<Option<Postgres>> = OnceLock::new();
    let pg = PG.get_or_init(|| {
        let vars = stack_env();
        let get = |k: &str| vars.get(k).cloned();
        Some(Postgres {
            host: get("DS_STACK_PG_HOST")?,
            port: get("DS_STACK_PG_PORT")?.parse().ok()?,
            user: get("DS_STACK_PG_ADMIN_USER")?,
            password: get("DS_STACK_PG_ADMIN_PASSWORD")?,
        })
        .filter(|pg| pg.psql("postgres", "SELECT 1").is_ok())
    });
    if pg.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "PostgreSQL is not running: start it with `scripts/stack up` (CI is set: this test fails rather than skips)"
        );
        eprintln!("skipping: PostgreSQL is not running (`scripts/stack up` starts it)");
    }
    pg.as_ref()
}

impl Postgres {
    /// Runs SQL with `psql` in database `db`; its unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = std::process::Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &self.host,
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                &self.user,
                "-d",
                db,
                "-c",
                sql,
            ])
            .env("PGPASSWORD", &self.password)
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// A fresh database for one test, dropped when the value is.
    pub fn database(&'static self, prefix: &str) -> TestDatabase {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("ds_test_{prefix}_{}_{n}", std::process::id());
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .expect("the test database is created");
        TestDatabase { pg: self, name }
    }
}

/// A database that exists for one test.
pub struct TestDatabase {
    /// Its server.
    pub pg: &'static Postgres,
    /// Its name.
    pub name: String,
}

impl TestDatabase {
    /// Runs SQL in it.
    pub fn sql(&self, sql: &str) -> String {
        self.pg
            .psql(&self.name, sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl TestDatabase {
    /// Drops the database now, then the workspace reader roles whose names hold `tag` (their privileges
    /// live in the database, so it goes first).
    pub fn drop_with_workspace_roles(&self, tag: &str) {
        self.drop_database();
        self.pg.drop_workspace_roles(tag);
    }

    fn drop_database(&self) {
        // A replication slot left by a failed test would keep the database from being dropped.
        let _ = self.pg.psql(
            "postgres",
            &format!(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{}'",
                self.name
            ),
        );
        let _ = self.pg.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        self.drop_database();
    }
}

/// The MariaDB server that `scripts/stack up` started: the MySQL-family source of sql_* stores.
pub struct Mysql {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// An administrator.
    pub user: String,
    /// Its password.
    pub password: String,
}

/// The stack's MariaDB, or `None` (after saying so) when it is not running and `CI` is not set.
pub fn mysql() -> Option<&'static Mysql> {
    static MYSQL: OnceLock<Option<Mysql>> = OnceLock::new();
    let mysql = MYSQL.get_or_init(|| {
        let vars = stack_env();
        let get = |k: &str| vars.get(k).cloned();
        Some(Mysql {
            host: get("DS_STACK_MYSQL_HOST")?,
            port: get("DS_STACK_MYSQL_PORT")?.parse().ok()?,
            user: get("DS_STACK_MYSQL_USER")?,
            password: get("DS_STACK_MYSQL_PASSWORD")?,
        })
        .filter(|m| m.sql("", "SELECT 1").is_ok())
    });
    if mysql.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "MariaDB is not running: start it with `scripts/stack up` (CI is set: this test fails rather than skips)"
        );
        eprintln!("skipping: MariaDB is not running (`scripts/stack up` starts it)");
    }
    mysql.as_ref()
}

impl Mysql {
    /// Runs SQL with the `mariadb` client in database `db` (none when empty); its tab-separated output.
    pub fn sql(&self, db: &str, sql: &str) -> Result<String, String> {
        let mut command = std::process::Command::new("mariadb");
        command
            .args(["--batch", "--skip-column-names", "-h", &self.host])
            .args(["-P", &self.port.to_string(), "-u", &self.user, "-e", sql])
            .env("MYSQL_PWD", &self.password);
        if !db.is_empty() {
            command.arg(db);
        }
        let out = command.output().map_err(|e| format!("mariadb: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// A fresh database for one test, dropped when the value is.
    pub fn database(&'static self, prefix: &str) -> MysqlDatabase {
        let name = format!("ds_test_{prefix}_{}", std::process::id());
        self.sql("", &format!("CREATE DATABASE {name}"))
            .expect("the test database is created");
        MysqlDatabase { mysql: self, name }
    }
}

/// A MariaDB database that exists for one test.
pub struct MysqlDatabase {
    /// Its server.
    pub mysql: &'static Mysql,
    /// Its name.
    pub name: String,
}

impl MysqlDatabase {
    /// Runs SQL in it.
    pub fn sql(&self, sql: &str) -> String {
        self.mysql
            .sql(&self.name, sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl Drop for MysqlDatabase {
    fn drop(&mut self) {
        let _ = self
            .mysql
            .sql("", &format!("DROP DATABASE IF EXISTS {}", self.name));
    }
}

/// The stack's Kafka broker (`scripts/stack up kafka`): its bootstrap address.
pub struct Kafka {
    /// `127.0.0.1:9092`.
    pub bootstrap: String,
}

/// The stack's Kafka, or `None` (after saying so) when it is not running and `CI` is not set.
pub fn kafka() -> Option<&'static Kafka> {
    static KAFKA: OnceLock<Option<Kafka>> = OnceLock::new();
    let kafka = KAFKA.get_or_init(|| {
        let bootstrap = stack_env().get("DS_STACK_KAFKA_BOOTSTRAP")?.clone();
        let address: std::net::SocketAddr = bootstrap.parse().ok()?;
        std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(2)).ok()?;
        Some(Kafka { bootstrap })
    });
    if kafka.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "Kafka is not running: start it with `scripts/stack up all` (CI is set: this test fails rather than skips)"
        );
        eprintln!("skipping: Kafka is not running (`scripts/stack up all` starts it)");
    }
    kafka.as_ref()
}

impl Kafka {
    fn run<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work)
    }

    async fn client(&self) -> rskafka::client::Client {
        rskafka::client::ClientBuilder::new(vec![self.bootstrap.clone()])
            .build()
            .await
            .expect("Kafka answers")
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        self.run(async {
            self.client()
                .await
                .controller_client()
                .unwrap()
                .create_topic(topic, partitions, 1, 5_000)
                .await
                .unwrap_or_else(|e| panic!("creating topic {topic}: {e}"));
        })
    }

    /// Deletes `topic` (nothing when it is not there).
    pub fn delete_topic(&self, topic: &str) {
        self.run(async {
            let _ = self
                .client()
                .await
                .controller_client()
                .unwrap()
                .delete_topic(topic, 5_000)
                .await;
        })
    }

    /// Produces records (key, value; `None` for none) to one partition of `topic`, in order.
    pub fn produce(&self, topic: &str, partition: i32, records: &[(Option<&str>, Option<&str>)]) {
        self.run(async {
            let client = self.client().await;
            let partition = client
                .partition_client(
                    topic,
                    partition,
                    rskafka::client::partition::UnknownTopicHandling::Retry,
                )
                .await
                .unwrap();
            let records = records
                .iter()
                .map(|(key, value)| rskafka::record::Record {
                    key: key.map(|k| k.as_bytes().to_vec()),
                    value: value.map(|v| v.as_bytes().to_vec()),
                    headers: Default::default(),
                    timestamp: Default::default(),
                })
                .collect();
            partition
                .produce(
                    records,
                    rskafka::client::partition::Compression::NoCompression,
                )
                .await
                .unwrap_or_else(|e| panic!("producing to {topic}: {e}"));
        })
    }
}

/// The Kafka Connect worker that `scripts/stack up kafka` (or `up all`) started.
pub struct Connect {
    /// `http://127.0.0.1:8083`.
    pub url: String,
}

/// The stack's Kafka Connect. Without it, a test fails when `CI` is set and is skipped otherwise (`None`).
pub fn connect() -> Option<&'static Connect> {
    static CONNECT: OnceLock<Option<Connect>> = OnceLock::new();
    let connect = CONNECT.get_or_init(|| {
        let url = stack_env().get("DS_STACK_CONNECT_URL")?.clone();
        let connect = Connect { url };
        (connect.call("GET", "/connector-plugins", None).0 == 200).then_some(connect)
    });
    if connect.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "Kafka Connect is not running: start it with `scripts/stack up all` (CI is set: this test fails rather than skips)"
        );
        eprintln!("skipping: Kafka Connect is not running (`scripts/stack up all` starts it)");
    }
    connect.as_ref()
}

impl Connect {
    /// One REST call with curl: the status and the JSON body (`null` when there is none). While the worker
    /// rebalances (other tests add connectors) it answers 409 or 500 "rebalance": tried again for up to 30 s.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (status, reply) = self.call_once(method, path, body);
            let rebalancing = status == 409
                || (status == 500
                    && reply["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("rebalance")));
            if !rebalancing || std::time::Instant::now() > deadline {
                return (status, reply);
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }

    fn call_once(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut command = std::process::Command::new("curl");
        command
            .args(["-s", "-m", "30", "-X", method, "-w", "\n%{http_code}"])
            .arg(format!("{}{path}", self.url));
        if let Some(body) = body {
            command
                .args(["-H", "Content-Type: application/json", "--data-binary"])
                .arg(body.to_string());
        }
        let out = command.output().expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (
            status.trim().parse().unwrap_or(0),
            serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        )
    }

    /// The connector's status (`GET /connectors/{name}/status`), `None` when there is none.
    pub fn status(&self, name: &str) -> Option<serde_json::Value> {
        let (status, body) = self.call("GET", &format!("/connectors/{name}/status"), None);
        (status == 200).then_some(body)
    }

    /// Waits up to `seconds` for `check` to hold on the connector's status; panics with the last one.
    pub fn wait_status(
        &self,
        name: &str,
        seconds: u64,
        check: impl Fn(&serde_json::Value) -> bool,
    ) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        let mut last = None;
        while std::time::Instant::now() < deadline {
            last = self.status(name);
            if last.as_ref().is_some_and(&check) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        panic!("connector {name}: status not as expected within {seconds} s: {last:?}");
    }

    /// Names of the connectors whose name contains `tag`.
    pub fn connectors(&self, tag: &str) -> Vec<String> {
        let (_, body) = self.call("GET", "/connectors", None);
        body.as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str())
            .filter(|n| n.contains(tag))
            .map(str::to_string)
            .collect()
    }
}

/// Deletes, when dropped, every connector whose name contains its tag: a test's connectors go before its
/// databases (whose slots they hold).
pub struct ConnectorsOf(pub &'static Connect, pub String);

impl Drop for ConnectorsOf {
    fn drop(&mut self) {
        for name in self.0.connectors(&self.1) {
            self.0.call("DELETE", &format!("/connectors/{name}"), None);
        }
    }
}

/// Polls `query` (a function returning text) until it equals `want`, for up to `seconds`; returns the last
/// value seen.
pub fn eventually(seconds: u64, want: &str, query: impl Fn() -> String) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        let got = query();
        if got == want || std::time::Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// Writes the quickstart's model files into `model` (created), each passed through `edit`: tests point it
/// at their own databases and give its workspaces (whose reader roles are cluster-wide) names of their
/// own. Only `*.ds.hcl` files: a user's local `.ds/` state directory may sit beside them.
pub fn copy_quickstart(model: &Path, edit: impl Fn(String) -> String) {
    std::fs::create_dir_all(model).unwrap();
    for entry in std::fs::read_dir(root().join("examples/quickstart")).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".ds.hcl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(model.join(path.file_name().unwrap()), edit(text)).unwrap();
    }
}

/// The quickstart's merge database (`database   = "datasurface"` on the stack's port) replaced by `db`.
pub fn quickstart_merge_db(text: String, pg: &Postgres, db: &str) -> String {
    text.replace(
        "port       = 55432\n    database   = \"datasurface\"",
        &format!("port       = {}\n    database   = \"{db}\"", pg.port),
    )
}

/// The quickstart's source database (`shop`) replaced by `db`.
pub fn quickstart_source_db(text: String, pg: &Postgres, db: &str) -> String {
    text.replace(
        "port     = 55432\n          database = \"shop\"",
        &format!("port     = {}\n          database = \"{db}\"", pg.port),
    )
}

/// The quickstart's text pointed at one test's databases on `pg` (`merge` and the shop's `source`), with its
/// workspaces renamed `<name>_<tag>`.
pub fn quickstart_for(text: String, pg: &Postgres, merge: &str, source: &str, tag: &str) -> String {
    quickstart_workspaces(
        quickstart_source_db(quickstart_merge_db(text, pg, merge), pg, source),
        tag,
    )
}

/// The shop's `products` table as a snapshot source's (the quickstart's `product_db`).
pub const PRODUCTS_TABLE: &str = "CREATE TABLE public.products (sku varchar(32) PRIMARY KEY, \
     name varchar(200) NOT NULL, price numeric(10,2) NOT NULL, currency char(3) NOT NULL, \
     in_stock integer NOT NULL, updated_at timestamp)";

/// The quickstart's text without the forensic data platform's `archive_bucket`: for tests of the merge
/// that do not archive (tests/it/archive.rs does).
pub fn quickstart_without_archive(text: String) -> String {
    text.replace("    archive_bucket          = \"ds-archive\"\n", "")
}

/// The quickstart's workspaces renamed `<name>_<tag>`.
pub fn quickstart_workspaces(text: String, tag: &str) -> String {
    text.replace(
        "workspace \"analytics\"",
        &format!("workspace \"analytics_{tag}\""),
    )
    .replace(
        "workspace \"directory_job\"",
        &format!("workspace \"directory_job_{tag}\""),
    )
}

impl Postgres {
    /// Drops the workspace reader roles (`ws_..._reader`) whose names hold `tag`; their databases must be
    /// gone first (a role's privileges live in them).
    pub fn drop_workspace_roles(&self, tag: &str) {
        if let Ok(roles) = self.psql(
            "postgres",
            &format!(
                "SELECT string_agg(quote_ident(rolname), ', ') FROM pg_roles WHERE rolname LIKE 'ws\\_%{tag}%'"
            ),
        ) && !roles.is_empty()
        {
            let _ = self.psql("postgres", &format!("DROP ROLE IF EXISTS {roles}"));
        }
    }
}

/// The stack's S3 server (MinIO, `scripts/stack up`): its endpoint, region and keys.
#[derive(Debug, Clone)]
pub struct S3 {
    /// `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// `us-east-1`.
    pub region: String,
    /// The access key (also `OBJECT_STORE_USER`).
    pub access_key: String,
    /// The secret key (also `OBJECT_STORE_PASSWORD`).
    pub secret_key: String,
}

/// The stack's S3 server, or `None` (after saying so) when it is not running and `CI` is not set.
pub fn s3() -> Option<&'static S3> {
    static S3: OnceLock<Option<S3>> = OnceLock::new();
    let s3 = S3.get_or_init(|| {
        let vars = stack_env();
        let get = |k: &str| vars.get(k).cloned();
        let s3 = S3 {
            endpoint: get("DS_STACK_S3_ENDPOINT")?,
            region: get("DS_STACK_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
            access_key: get("DS_STACK_S3_ACCESS_KEY")?,
            secret_key: get("DS_STACK_S3_SECRET_KEY")?,
        };
        let host = s3.endpoint.split_once("://")?.1.trim_end_matches('/');
        let address: std::net::SocketAddr = host.parse().ok()?;
        std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(2)).ok()?;
        Some(s3)
    });
    if s3.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the S3 server is not running: start it with `scripts/stack up` (CI is set: this test fails rather than skips)"
        );
        eprintln!("skipping: the S3 server is not running (`scripts/stack up` starts it)");
    }
    s3.as_ref()
}

/// An S3 server of one test's own, to stop and start again (fault tests): the stack's MinIO binary
/// (`.stack/bin/minio`, built by `scripts/stack up`) on a port and a data directory of its own, with keys
/// of its own. Stopped and its directory removed when dropped.
pub struct OwnS3 {
    /// Its endpoint and keys (region `us-east-1`).
    pub s3: S3,
    dir: PathBuf,
    port: u16,
    child: Option<std::process::Child>,
}

impl OwnS3 {
    /// A started server, or `None` (after saying so) when the MinIO binary is not built and `CI` is not set.
    pub fn start() -> Option<OwnS3> {
        let binary = root().join(".stack/bin/minio");
        if !binary.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{} is missing: `scripts/stack up` builds it (CI is set: this test fails rather than skips)",
                binary.display()
            );
            eprintln!(
                "skipping: {} is missing (`scripts/stack up` builds it)",
                binary.display()
            );
            return None;
        }
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("ds-own-s3-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut own = OwnS3 {
            s3: S3 {
                endpoint: format!("http://127.0.0.1:{port}"),
                region: "us-east-1".into(),
                access_key: format!("dsfault{n}"),
                secret_key: format!("secret-{}-{n}-fault", std::process::id()),
            },
            dir,
            port,
            child: None,
        };
        own.resume();
        Some(own)
    }

    /// Starts the server again (the same port, data and keys) and waits until it is ready.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the server runs already");
        let log = std::fs::File::create(self.dir.join("minio.log")).unwrap();
        let child = std::process::Command::new(root().join(".stack/bin/minio"))
            .args(["server", "--quiet", "--address"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg(self.dir.join("data"))
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.dir)
            .env("MINIO_ROOT_USER", &self.s3.access_key)
            .env("MINIO_ROOT_PASSWORD", &self.s3.secret_key)
            .env("MINIO_SITE_REGION", &self.s3.region)
            .env("MINIO_BROWSER", "off")
            .env("MINIO_UPDATE", "off")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("minio starts");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !self.ready() {
            assert!(
                std::time::Instant::now() < deadline,
                "minio did not get ready on port {} within 30 s: {}",
                self.port,
                std::fs::read_to_string(self.dir.join("minio.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Stops the server (killed, as a crash or a power cut would) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `GET /minio/health/ready` answers 200.
    fn ready(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        if stream
            .write_all(b"GET /minio/health/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).is_ok() && head.ends_with(b"200")
    }
}

impl Drop for OwnS3 {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A bucket of one test on an S3 server, with a client for it and a runtime to call it on: emptied (every
/// object version and delete marker) and deleted when dropped, and first, when a run before left it.
pub struct TestBucket {
    /// The bucket's name.
    pub name: String,
    /// A client with the server's keys.
    pub client: providers::s3::sdk::Client,
    /// A runtime for the client's calls.
    pub runtime: tokio::runtime::Runtime,
}

impl TestBucket {
    /// The bucket `name` on `s3`, made when `create` (otherwise the test makes it, through `ds`).
    pub fn new(s3: &S3, name: String, create: bool) -> TestBucket {
        let bucket = TestBucket {
            name,
            client: providers::s3::live::client(
                &s3.endpoint,
                &s3.region,
                &s3.access_key,
                &s3.secret_key,
            ),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        };
        bucket.remove();
        if create {
            bucket
                .runtime
                .block_on(bucket.client.create_bucket().bucket(&bucket.name).send())
                .expect("the test bucket is made");
        }
        bucket
    }

    /// The object `key`'s bytes, if it is there.
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        self.runtime.block_on(async {
            let out = self
                .client
                .get_object()
                .bucket(&self.name)
                .key(key)
                .send()
                .await
                .ok()?;
            Some(out.body.collect().await.ok()?.into_bytes().to_vec())
        })
    }

    /// Writes the object `key`.
    pub fn put(&self, key: &str, body: Vec<u8>) {
        self.runtime
            .block_on(
                self.client
                    .put_object()
                    .bucket(&self.name)
                    .key(key)
                    .body(providers::s3::sdk::primitives::ByteStream::from(body))
                    .send(),
            )
            .unwrap();
    }

    /// Deletes the object `key`; whether it was there.
    pub fn delete(&self, key: &str) -> bool {
        self.object(key).is_some()
            && self.runtime.block_on(async {
                self.client
                    .delete_object()
                    .bucket(&self.name)
                    .key(key)
                    .send()
                    .await
                    .is_ok()
            })
    }

    /// Every object version and delete marker deleted; with `bucket`, the bucket too.
    pub fn empty(&self, bucket: bool) {
        let (client, name) = (&self.client, &self.name);
        self.runtime.block_on(async {
            loop {
                let Ok(listed) = client.list_object_versions().bucket(name).send().await else {
                    return;
                };
                let versions = listed.versions().iter().map(|v| (v.key(), v.version_id()));
                let markers = listed
                    .delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id()));
                let all: Vec<_> = versions.chain(markers).collect();
                if all.is_empty() {
                    break;
                }
                for (key, version) in all {
                    let _ = client
                        .delete_object()
                        .bucket(name)
                        .key(key.unwrap_or_default())
                        .set_version_id(version.map(str::to_string))
                        .send()
                        .await;
                }
            }
            if bucket {
                let _ = client.delete_bucket().bucket(name).send().await;
            }
        });
    }

    fn remove(&self) {
        self.empty(true);
    }
}

impl Drop for TestBucket {
    fn drop(&mut self) {
        self.remove();
    }
}
