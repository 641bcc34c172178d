//! The PostgreSQL image's real entrypoint (`templates/images/postgres/entrypoint.sh`), run
//! on this machine's PostgreSQL 15 binaries against a data directory of its own: the app's
//! role owns its database and nothing else, is no superuser, and an old data directory
//! whose app role was the bootstrap superuser is demoted on the next start.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = "/usr/lib/postgresql/15/bin";
const APP: &str = "links_app";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A data directory (and a copy of the entrypoint) that the postgres user can reach.
struct Dir {
    _temp: tempfile::TempDir,
    root: PathBuf,
    port: u16,
}

impl Dir {
    fn new() -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let root = temp.path().to_owned();
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../templates/images/postgres/entrypoint.sh"
            ),
            root.join("entrypoint.sh"),
        )
        .expect("copy the entrypoint");
        Command::new("chmod")
            .args(["-R", "a+rx"])
            .arg(&root)
            .status()
            .expect("chmod");
        Dir {
            _temp: temp,
            root,
            port: free_port(),
        }
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    /// Starts the entrypoint as the image does (as root, dropping to postgres), with the
    /// password in a file as the deployer gives it (`POSTGRES_PASSWORD_FILE`, mode 0444),
    /// and waits until the app role can log in over TCP with `password`.
    fn start(&self, password: &str) -> Server {
        use std::os::unix::fs::PermissionsExt;
        let file = self.root.join("password");
        std::fs::write(&file, password).expect("write the password file");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444))
            .expect("chmod the password file");
        let child = Command::new("sh")
            .arg(self.root.join("entrypoint.sh"))
            .args(["postgres", "-c", "listen_addresses=127.0.0.1"])
            .env(
                "PATH",
                format!("{BIN}:{}", std::env::var("PATH").unwrap_or_default()),
            )
            .env("PGDATA", self.data())
            .env("PGPORT", self.port.to_string())
            .env("POSTGRES_USER", APP)
            .env("POSTGRES_DB", APP)
            .env("POSTGRES_PASSWORD_FILE", &file)
            .env_remove("POSTGRES_PASSWORD")
            .spawn()
            .expect("run the entrypoint");
        let server = Server {
            child,
            port: self.port,
        };
        let started = Instant::now();
        while !server.psql(APP, password, APP, "SELECT 1").status.success() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "PostgreSQL did not come up"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        server
    }
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn psql(&self, user: &str, password: &str, db: &str, sql: &str) -> Output {
        Command::new(Path::new(BIN).join("psql"))
            .args(["-X", "-At", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", user, "-d", db, "-c", sql])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .expect("psql")
    }

    fn query(&self, password: &str, sql: &str) -> String {
        let out = self.psql(APP, password, APP, sql);
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn stop(mut self) {
        // SIGINT is the image's STOPSIGNAL: a fast shutdown.
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill");
        self.child.wait().expect("wait");
    }
}

/// What must hold for the app role on any start.
fn assert_least_privilege(server: &Server, password: &str) {
    assert_eq!(
        server.query(
            password,
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls \
             FROM pg_roles WHERE rolname = current_user"
        ),
        "f|f|f|f|f"
    );
    assert_eq!(
        server.query(
            password,
            "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database \
             WHERE pg_get_userbyid(datdba) = current_user"
        ),
        APP,
        "the app role owns its database and no other"
    );
    // Migrations run as this role: it can create in its own database.
    server.query(
        password,
        "CREATE TABLE IF NOT EXISTS probe (id int); DROP TABLE probe",
    );
    for sql in [
        "CREATE DATABASE other",
        "CREATE ROLE other",
        "UPDATE pg_authid SET rolsuper = true WHERE rolname = current_user",
        "ALTER ROLE current_user SUPERUSER",
    ] {
        let out = server.psql(APP, password, APP, sql);
        assert!(!out.status.success(), "{sql} was allowed");
    }
    let other = server.psql(APP, password, "postgres", "SELECT 1");
    assert!(
        !other.status.success(),
        "the app role may connect to postgres"
    );
    let superuser = server.psql("postgres", password, "postgres", "SELECT 1");
    let refused = String::from_utf8_lossy(&superuser.stderr);
    assert!(
        !superuser.status.success() && refused.contains("pg_hba.conf rejects"),
        "the superuser logs in over TCP: {refused}"
    );
}

#[test]
fn a_fresh_data_directory_gives_the_app_an_unprivileged_owner_role() {
    let dir = Dir::new();
    // Quotes, a backslash and a trailing newline: psql's own quoting keeps them a
    // password, and the file is read byte for byte.
    let password = "pw'with\"quotes\\\n";
    let server = dir.start(password);
    assert_least_privilege(&server, password);
    server.stop();

    // A rotated secret applies on the next start; the old one stops working.
    let server = dir.start("rotated");
    assert_least_privilege(&server, "rotated");
    assert!(!server.psql(APP, password, APP, "SELECT 1").status.success());
    server.stop();
}

#[test]
fn an_old_data_directory_whose_app_role_was_superuser_is_demoted() {
    let dir = Dir::new();
    // The layout the previous entrypoint made: initdb with the app's role as superuser.
    std::fs::create_dir(dir.data()).expect("data dir");
    Command::new("chown")
        .arg("postgres:postgres")
        .arg(dir.data())
        .status()
        .expect("chown");
    let init = format!(
        "{BIN}/initdb -D {data} -U {APP} -E UTF8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null \
         && printf 'host all all all scram-sha-256\\n' >>{data}/pg_hba.conf \
         && {BIN}/pg_ctl -D {data} -o \"-c listen_addresses= -c unix_socket_directories={data} -p {port}\" -w start >/dev/null \
         && {BIN}/psql -X -q -h {data} -p {port} -U {APP} -d postgres -c 'CREATE DATABASE {APP} OWNER {APP}' \
         && {BIN}/pg_ctl -D {data} -m fast -w stop >/dev/null",
        data = dir.data().display(),
        port = dir.port,
    );
    let status = Command::new("setpriv")
        .args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "sh",
            "-c",
            &init,
        ])
        .status()
        .expect("initdb");
    assert!(status.success());

    let server = dir.start("first");
    assert_least_privilege(&server, "first");
    server.stop();
    // Starting again changes nothing that was already right.
    let server = dir.start("first");
    assert_least_privilege(&server, "first");
    server.stop();
}
