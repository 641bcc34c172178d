//! The schema's migrations, compiled into the binary from `migrations/` and applied by
//! sqlx's migrator at ignition.
//!
//! sqlx's `migrate!` macro would embed the same files, but it is a proc macro that links
//! sqlx, tokio, rustls and ring, so a release build compiled them all a second time for the
//! build host. Here they are listed by hand; a test checks the list against sqlx's own
//! reading of the directory (versions, descriptions, checksums), so a new file that is not
//! listed fails the tests rather than being skipped.

use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};
use sqlx::PgPool;

/// Each migration's version, its description (as sqlx derives it from the file name:
/// `<version>_<description>.sql`, `_` read as a space) and its SQL.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    20260101000000,
    "links",
    include_str!("../../migrations/20260101000000_links.sql"),
)];

/// The compiled-in migrations as a source for [`Migrator::new`].
#[derive(Debug)]
struct CompiledIn;

impl MigrationSource<'static> for CompiledIn {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        let migrations = MIGRATIONS
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into(),
                )
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
}

/// The migrator that brings a database to this binary's schema.
async fn migrator() -> Result<Migrator, MigrateError> {
    Migrator::new(CompiledIn).await
}

/// Brings the database behind `pool` to this binary's schema.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    migrator().await?.run(pool).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[rocket::async_test]
    async fn the_list_is_what_sqlx_reads_from_the_directory() {
        let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let read = Migrator::new(directory).await.expect("read migrations/");
        let compiled = migrator().await.expect("compiled-in migrations");
        let summary = |m: &Migrator| -> Vec<(i64, String, Vec<u8>, bool)> {
            m.iter()
                .map(|m| {
                    let simple = matches!(m.migration_type, MigrationType::Simple);
                    (
                        m.version,
                        m.description.to_string(),
                        m.checksum.to_vec(),
                        simple,
                    )
                })
                .collect()
        };
        assert!(!summary(&read).is_empty(), "migrations/ holds no migration");
        assert_eq!(
            summary(&compiled),
            summary(&read),
            "MIGRATIONS in store/schema.rs must list every file of migrations/, in order"
        );
    }
}
