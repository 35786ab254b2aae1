//! Schema versions and forward migrations, one way for every SQLite store.
//!
//! A store's schema is the list of its migrations, oldest first: migration `i` takes a
//! database from version `i` to `i + 1`, and version 0 is an empty file, so a new
//! database is created by running them all and an old one is brought forward by running
//! the rest (the model is Moonfire NVR's `db/upgrade/`). The version lives in SQLite's
//! `PRAGMA user_version`, and each step runs in one transaction together with its
//! version bump, so a crash during an upgrade leaves the database at the last completed
//! version, never half-way. A database newer than this Vigil is refused, never touched.
//!
//! Migrations are never edited once released: a change to a store is a new migration at
//! the end. `docs/schema.md` describes every store at its current version.

use rusqlite::Connection;

/// One step of a schema: SQL that takes the database from the version before it to the
/// next. It must not contain its own `BEGIN`/`COMMIT`.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// What the step changes, in a few words (shown when it runs, and in errors).
    pub description: &'static str,
    /// The statements.
    pub sql: &'static str,
}

/// A store's schema: the file it lives in and its migrations, oldest first.
#[derive(Clone, Copy, Debug)]
pub struct Schema {
    /// The database's file name (`index.sqlite3`), for messages.
    pub file: &'static str,
    /// Migration `i` takes version `i` to `i + 1`.
    pub migrations: &'static [Migration],
}

/// Why a database's schema cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Written by a newer Vigil: refused, so that nothing it wrote is misread or lost.
    #[error("{file} has schema version {found}, this Vigil knows up to {known}: it was written by a newer Vigil")]
    Newer {
        /// The file.
        file: &'static str,
        /// Its version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// Written by an older Vigil and opened read-only, so it cannot be upgraded here.
    #[error("{file} has schema version {found} (written by an older Vigil), this one needs {known}: start `vigil serve` once to upgrade it")]
    Older {
        /// The file.
        file: &'static str,
        /// Its version.
        found: i64,
        /// The version this build needs.
        known: i64,
    },
    /// SQLite failed while reading the version or running a migration.
    #[error("{file}: {step}: {source}")]
    Sqlite {
        /// The file.
        file: &'static str,
        /// What was being done.
        step: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

/// What [`Schema::upgrade`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upgraded {
    /// The version found.
    pub from: i64,
    /// The version now (the current one).
    pub to: i64,
}

impl Schema {
    /// The current version: the number of migrations.
    pub fn version(&self) -> i64 {
        i64::try_from(self.migrations.len()).unwrap_or(i64::MAX)
    }

    /// The version stored in `conn`.
    pub fn stored_version(&self, conn: &Connection) -> Result<i64, SchemaError> {
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|source| self.sqlite("reading the schema version", source))
    }

    /// Brings `conn` to the current version (creating the schema in an empty database),
    /// one transaction per migration. Refuses a newer database without changing it.
    pub fn upgrade(&self, conn: &mut Connection) -> Result<Upgraded, SchemaError> {
        let from = self.stored_version(conn)?;
        if from > self.version() {
            return Err(SchemaError::Newer {
                file: self.file,
                found: from,
                known: self.version(),
            });
        }
        self.run(conn, from.max(0), self.version())?;
        Ok(Upgraded {
            from,
            to: self.version(),
        })
    }

    /// For a read-only opener: the database must be at the current version.
    pub fn check(&self, conn: &Connection) -> Result<(), SchemaError> {
        let found = self.stored_version(conn)?;
        let known = self.version();
        match found.cmp(&known) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Less => Err(SchemaError::Older {
                file: self.file,
                found,
                known,
            }),
            std::cmp::Ordering::Greater => Err(SchemaError::Newer {
                file: self.file,
                found,
                known,
            }),
        }
    }

    /// Creates the schema of an older `version` in an empty database, as that Vigil did
    /// (tests of the upgrade from each older version).
    pub fn create_at(&self, conn: &mut Connection, version: i64) -> Result<(), SchemaError> {
        self.run(conn, 0, version.clamp(0, self.version()))
    }

    fn run(&self, conn: &mut Connection, from: i64, to: i64) -> Result<(), SchemaError> {
        for v in from..to {
            let Some(m) = usize::try_from(v).ok().and_then(|i| self.migrations.get(i)) else {
                break;
            };
            let step = format!("migration {v} → {} ({})", v + 1, m.description);
            let tx = conn
                .transaction()
                .map_err(|source| self.sqlite(&step, source))?;
            tx.execute_batch(m.sql)
                .and_then(|()| tx.pragma_update(None, "user_version", v + 1))
                .and_then(|()| tx.commit())
                .map_err(|source| self.sqlite(&step, source))?;
        }
        Ok(())
    }

    fn sqlite(&self, step: &str, source: rusqlite::Error) -> SchemaError {
        SchemaError::Sqlite {
            file: self.file,
            step: step.to_owned(),
            source,
        }
    }
}

/// Every table's columns and every index of `conn`, one line each, sorted: what two
/// databases must share to be the same schema (the `CREATE` texts differ after an
/// `ALTER TABLE`, so they are not compared). For tests and diagnostics.
pub fn describe(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut objects = conn.prepare(
        "SELECT type, name, tbl_name FROM sqlite_master \
         WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
    )?;
    let objects: Vec<(String, String, String)> = objects
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (kind, name, table) in objects {
        match kind.as_str() {
            "table" => {
                let mut cols = conn.prepare("SELECT * FROM pragma_table_info(?1)")?;
                let cols: Vec<String> = cols
                    .query_map([&name], |r| {
                        Ok(format!(
                            "column {name}.{}: {} notnull={} default={:?} pk={}",
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, Option<String>>(4)?,
                            r.get::<_, i64>(5)?
                        ))
                    })?
                    .collect::<Result<_, _>>()?;
                out.push(format!("table {name}"));
                out.extend(cols);
            }
            "index" => {
                let mut cols = conn.prepare("SELECT name FROM pragma_index_info(?1)")?;
                let cols: Vec<String> = cols
                    .query_map([&name], |r| r.get::<_, Option<String>>(0))?
                    .map(|c| c.map(|c| c.unwrap_or_else(|| "<expr>".into())))
                    .collect::<Result<_, _>>()?;
                out.push(format!("index {name} on {table} ({})", cols.join(", ")));
            }
            other => out.push(format!("{other} {name} on {table}")),
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEPS: &[Migration] = &[
        Migration {
            description: "thing",
            sql: "CREATE TABLE thing (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
        },
        Migration {
            description: "thing.size",
            sql: "ALTER TABLE thing ADD COLUMN size INTEGER;",
        },
        Migration {
            description: "thing by name",
            sql: "CREATE INDEX thing_name ON thing (name);",
        },
    ];
    const SCHEMA: Schema = Schema {
        file: "test.sqlite3",
        migrations: STEPS,
    };

    #[test]
    fn new_databases_run_every_step_and_old_ones_the_rest_keeping_rows() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(
            SCHEMA.upgrade(&mut conn).unwrap(),
            Upgraded { from: 0, to: 3 }
        );
        SCHEMA.check(&conn).unwrap();

        let mut old = Connection::open_in_memory().unwrap();
        SCHEMA.create_at(&mut old, 1).unwrap();
        old.execute("INSERT INTO thing (name) VALUES ('kept')", [])
            .unwrap();
        assert!(matches!(
            SCHEMA.check(&old),
            Err(SchemaError::Older { found: 1, .. })
        ));
        assert_eq!(
            SCHEMA.upgrade(&mut old).unwrap(),
            Upgraded { from: 1, to: 3 }
        );
        assert_eq!(describe(&old).unwrap(), describe(&conn).unwrap());
        let name: String = old
            .query_row("SELECT name FROM thing", [], |r| r.get(0))
            .unwrap();
        assert_eq!(name, "kept");
    }

    #[test]
    fn a_newer_database_is_refused_untouched() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 9).unwrap();
        let err = SCHEMA.upgrade(&mut conn).unwrap_err();
        assert!(err.to_string().contains("newer Vigil"), "{err}");
        assert_eq!(SCHEMA.stored_version(&conn).unwrap(), 9);
        assert!(describe(&conn).unwrap().is_empty());
    }

    #[test]
    fn a_failing_step_leaves_the_last_completed_version() {
        const BROKEN: &[Migration] = &[
            STEPS[0],
            Migration {
                description: "broken",
                sql: "ALTER TABLE thing ADD COLUMN size INTEGER; ALTER TABLE nosuch ADD COLUMN x;",
            },
        ];
        let schema = Schema {
            file: "broken.sqlite3",
            migrations: BROKEN,
        };
        let mut conn = Connection::open_in_memory().unwrap();
        let err = schema.upgrade(&mut conn).unwrap_err();
        assert!(
            err.to_string().contains("migration 1 → 2 (broken)"),
            "{err}"
        );
        assert_eq!(schema.stored_version(&conn).unwrap(), 1);
        // The failed step's first statement was rolled back with it.
        assert!(!describe(&conn).unwrap().iter().any(|l| l.contains("size")));
    }
}
