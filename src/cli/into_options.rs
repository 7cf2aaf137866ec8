//! The command line's arguments turned into each command's typed options:
//! connections resolved (bastions included), patterns parsed, numbers
//! checked, defaults taken from `options`.

use super::*;

impl Command {
    /// Resolves the arguments into the command's typed options.
    ///
    /// # Errors
    /// Usage errors: connection strings, patterns, locations, modes, levels,
    /// numbers out of range, or a combination that cannot work.
    pub fn into_options(self) -> Result<Options> {
        Ok(match self {
            Command::List(a) => Options::List(a.into_options()?),
            Command::Backup(a) => Options::Backup(a.into_options()?),
            Command::Verify(a) => Options::Verify(a.into_options()?),
            Command::Copy(a) => Options::Copy(a.into_options()?),
            Command::Restore(a) => Options::Restore(a.into_options()?),
            Command::Sql(a) => Options::Sql(a.into_options()?),
            Command::Diff(a) => Options::Diff(a.into_options()?),
            Command::Run(a) => Options::Run(a.into_options()),
            Command::Completions(_) | Command::Man(_) => {
                return Err(Error::usage("completions and man print before any command runs"));
            }
        })
    }

    /// `completions` and `man`: writes the script or page to stdout and
    /// returns `Some`; `None` for the commands that run (see
    /// [`Command::into_options`]). They come from this very definition, so
    /// they cannot drift from the flags.
    pub fn write_docs(&self) -> Option<Result<()>> {
        use clap::CommandFactory;
        // Rendered whole first: the generators panic on a failed write.
        let mut text = Vec::new();
        match self {
            Command::Completions(a) => {
                clap_complete::generate(a.shell, &mut Cli::command(), "pgbarge", &mut text);
            }
            Command::Man(a) => {
                let root = Cli::command();
                let page = match &a.command {
                    None => root,
                    Some(name) => match root.find_subcommand(name) {
                        Some(c) => c.clone().name(format!("pgbarge-{name}")),
                        None => {
                            return Some(Err(Error::usage(format!(
                                "no command \"{name}\"; see pgbarge --help"
                            ))));
                        }
                    },
                };
                if let Err(e) = clap_mangen::Man::new(page).render(&mut text) {
                    return Some(Err(Error::runtime(format!(
                        "cannot render the manual page: {e}"
                    ))));
                }
            }
            _ => return None,
        }
        use std::io::Write as _;
        Some(match std::io::stdout().lock().write_all(&text) {
            // `pgbarge man | head`: the reader has all it wanted.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r.map_err(|e| Error::io("cannot write to", "stdout", e)),
        })
    }
}

impl ConnArgs {
    /// `-d`, or the PG* environment alone.
    ///
    /// # Errors
    /// A usage error for a malformed connection string or environment.
    pub fn resolve(&self) -> Result<Arc<ConnInfo>> {
        resolve_with_bastion(self.conn.as_deref().unwrap_or(""), self.ssh.bastion()?)
    }
}

/// Resolves a connection string (falling back to the PG* environment) to be
/// reached through `bastion`, if any.
///
/// # Errors
/// A usage error for a malformed connection string or environment.
pub fn resolve_with_bastion(conn: &str, bastion: Option<Bastion>) -> Result<Arc<ConnInfo>> {
    let mut info = resolve(conn, &process_env)?;
    info.ssh = bastion;
    Ok(Arc::new(info))
}

/// A dry run prints a plan for people; `--json` is for what ran.
fn no_json_dry_run(json: bool, dry_run: bool) -> Result<()> {
    if json && dry_run {
        return Err(Error::usage(
            "--json and --dry-run cannot be combined: a dry run's plan is printed for people",
        ));
    }
    Ok(())
}

impl TableArgs {
    /// The selection `-t` and `-T` make.
    ///
    /// # Errors
    /// A usage error for a malformed pattern.
    pub fn selection(&self) -> Result<Selection> {
        Selection::parse(&self.include, &self.exclude)
    }
}

impl KeyArgs {
    /// The keys given, if any.
    ///
    /// # Errors
    /// A usage error for a key file that cannot be read or holds no key.
    pub fn resolve(&self) -> Result<Option<crate::format::encryption::Identities>> {
        options::identities(&self.identity, self.passphrase_file.as_deref())
    }
}

impl ListArgs {
    fn into_options(self) -> Result<ListOptions> {
        Ok(ListOptions {
            conn: self.conn.resolve()?,
            selection: self.tables.selection()?,
            json: self.json,
        })
    }
}

impl BackupArgs {
    fn into_options(self) -> Result<BackupOptions> {
        crate::limits::jobs(self.jobs)?;
        let lock_wait_timeout = options::lock_wait(self.lock_wait_timeout)?;
        Ok(BackupOptions {
            conn: self.conn.resolve()?,
            selection: self.tables.selection()?,
            dir: Location::parse(&self.output)?,
            jobs: self.jobs,
            compression: options::compression(self.compress.as_deref())?,
            schema: self.schema,
            force: self.force,
            lock_wait_timeout,
            encrypt_to: options::encryption(
                &self.encrypt_to,
                self.encrypt_passphrase_file.as_deref(),
            )?,
            json: self.json,
            quiet: self.quiet || self.json,
        })
    }
}

impl VerifyArgs {
    fn into_options(self) -> Result<VerifyOptions> {
        crate::limits::jobs(self.jobs)?;
        let conn = match &self.conn.conn {
            Some(_) => Some(self.conn.resolve()?),
            None => None,
        };
        Ok(VerifyOptions {
            dir: Location::parse(&self.dir)?,
            conn,
            selection: self.tables.selection()?,
            jobs: self.jobs,
            deep: self.deep,
            expect: self.expect.map(PathBuf::from),
            keys: self.keys.resolve()?,
            json: self.json,
            quiet: self.quiet,
            silent: false,
        })
    }
}

impl LoadArgs {
    /// The load's typed options, and `-j` checked against `--per-table-commit`.
    fn options(&self) -> Result<(LoadOptions, usize)> {
        let options = LoadOptions {
            mode: options::mode(self.mode.as_deref())?,
            disable_triggers: self.disable_triggers,
            cascade: self.cascade,
            lock_wait_timeout: options::lock_wait(self.lock_wait_timeout)?,
        };
        Ok((options, parse_jobs(self.jobs, self.per_table_commit)?))
    }
}

impl CopyArgs {
    fn into_options(self) -> Result<CopyOptions> {
        no_json_dry_run(self.json, self.load.dry_run)?;
        let (source, target) = self.bastions.resolve(&self.source, &self.target)?;
        let (options, jobs) = self.load.options()?;
        let verify = VerifyLevel::parse(self.verify.as_deref(), options.mode)?;
        Ok(CopyOptions {
            source,
            target,
            selection: self.tables.selection()?,
            options,
            jobs,
            per_table_commit: self.load.per_table_commit,
            dry_run: self.load.dry_run,
            verify,
            json: self.json,
            quiet: self.quiet || self.json,
        })
    }
}

impl RestoreArgs {
    fn into_options(self) -> Result<RestoreOptions> {
        no_json_dry_run(self.json, self.load.dry_run)?;
        let (options, jobs) = self.load.options()?;
        Ok(RestoreOptions {
            dir: Location::parse(&self.dir)?,
            conn: self.conn.resolve()?,
            selection: self.tables.selection()?,
            options,
            per_table_commit: self.load.per_table_commit,
            ignore_unlisted: self.ignore_unlisted,
            jobs,
            schema: self.schema,
            clean: self.clean,
            keys: self.keys.resolve()?,
            dry_run: self.load.dry_run,
            json: self.json,
            quiet: self.quiet || self.json,
        })
    }
}

impl SqlArgs {
    fn into_options(self) -> Result<SqlOptions> {
        if self.files.is_empty() {
            return Err(Error::usage("name at least one SQL file"));
        }
        Ok(SqlOptions {
            conn: self.conn.resolve()?,
            files: self.files,
            single_transaction: self.single_transaction,
            json: self.json,
            quiet: self.quiet || self.json,
        })
    }
}

impl DiffArgs {
    fn into_options(self) -> Result<DiffOptions> {
        let (source, target) = self.bastions.resolve(&self.source, &self.target)?;
        Ok(DiffOptions {
            source,
            target,
            selection: self.tables.selection()?,
            schemas: self.schemas,
            compare: crate::catalog::compare::CompareOptions {
                names: self.names,
                column_order: self.column_order,
                versions: self.versions,
                owners: self.owners,
                privileges: self.privileges,
                comments: self.comments,
            },
            lock_wait_timeout: options::lock_wait(self.lock_wait_timeout)?,
            json: self.json,
            quiet: self.quiet,
        })
    }
}

impl RunArgs {
    fn into_options(self) -> RunOptions {
        RunOptions {
            plan: PathBuf::from(self.plan),
            dry_run: self.dry_run,
            from: self.from,
            json: self.json,
            quiet: self.quiet || self.json,
        }
    }
}
