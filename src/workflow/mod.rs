//! The workflow language: what ops teams write in `workflows/*.yaml`.
//!
//! A workflow is a trigger and an ordered list of steps; an instance of it is
//! a checkpointed state machine (see [`interpreter`]). This module loads and
//! validates files ([`validate`]), and picks which workflow an order runs
//! ([`Catalog::select`]). Nothing here does I/O beyond reading the files it
//! is asked to load. `workflows/README.md` documents the language.

pub mod cost;
pub mod dryrun;
pub mod expr;
pub mod interpreter;
pub mod model;
pub mod node;
pub mod validate;
pub mod value;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use interpreter::{advance, Advance, Ctx, Effect, Input, Instance};
pub use model::Definition;
pub use validate::{parse_workflow, parse_workflow_with, Channels, Diagnostic, Report};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// One or more files had problems; each report lists them all.
    #[error("{}", .0.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Report>),
}

/// Every workflow file under the given paths (files or folders; folders are
/// read one level deep, `*.yaml` and `*.yml`, sorted by name).
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|source| Error::Io {
                path: p.display().to_string(),
                source,
            })?;
            let mut files: Vec<PathBuf> = rd
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| {
                    f.is_file()
                        && matches!(f.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                })
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Loads and validates one file (channel names unchecked).
pub fn load_file(path: &Path) -> Result<Definition, Error> {
    load_file_with(path, None)
}

/// Loads and validates one file; with `channels`, the channels its
/// `notify.send` steps name must be defined.
pub fn load_file_with(path: &Path, channels: Option<&Channels>) -> Result<Definition, Error> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    let shown = path.display().to_string();
    if meta.len() > node::MAX_FILE_BYTES as u64 {
        return Err(Error::Invalid(vec![Report {
            path: shown,
            diagnostics: vec![Diagnostic {
                pos: node::Pos { line: 1, col: 1 },
                message: format!(
                    "file is {} bytes; the limit is {} bytes",
                    meta.len(),
                    node::MAX_FILE_BYTES
                ),
            }],
        }]));
    }
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: shown.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::Invalid(vec![Report {
            path: shown.clone(),
            diagnostics: vec![Diagnostic {
                pos: node::Pos { line: 1, col: 1 },
                message: format!("file is not UTF-8 ({e})"),
            }],
        }])
    })?;
    parse_workflow_with(&shown, &text, channels).map_err(|r| Error::Invalid(vec![r]))
}

/// The workflows currently in force: one definition per name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub definitions: Vec<Arc<Definition>>,
}

impl Catalog {
    /// Loads every file; any invalid file (or two files with one name)
    /// fails the whole load, with every problem of every file.
    pub fn load(paths: &[PathBuf]) -> Result<Catalog, Error> {
        Catalog::load_with(paths, None)
    }

    /// [`Catalog::load`], and with `channels` the channels the workflows'
    /// `notify.send` steps name must be defined.
    pub fn load_with(paths: &[PathBuf], channels: Option<&Channels>) -> Result<Catalog, Error> {
        let (cat, reports) = Catalog::load_valid_with(paths, channels)?;
        if reports.is_empty() {
            Ok(cat)
        } else {
            Err(Error::Invalid(reports))
        }
    }

    /// Loads every valid file, and reports the invalid ones (a second file
    /// with a name already used is invalid). Fails only when the paths
    /// cannot be read.
    pub fn load_valid(paths: &[PathBuf]) -> Result<(Catalog, Vec<Report>), Error> {
        Catalog::load_valid_with(paths, None)
    }

    fn load_valid_with(
        paths: &[PathBuf],
        channels: Option<&Channels>,
    ) -> Result<(Catalog, Vec<Report>), Error> {
        let mut defs: Vec<Arc<Definition>> = Vec::new();
        let mut reports = Vec::new();
        for f in collect_files(paths)? {
            match load_file_with(&f, channels) {
                Ok(d) => {
                    if let Some(other) = defs.iter().find(|o| o.name == d.name) {
                        reports.push(Report {
                            path: d.path.clone(),
                            diagnostics: vec![Diagnostic {
                                pos: node::Pos { line: 1, col: 1 },
                                message: format!(
                                    "workflow name \"{}\" is already used by {}",
                                    d.name, other.path
                                ),
                            }],
                        });
                    } else {
                        defs.push(Arc::new(d));
                    }
                }
                Err(Error::Invalid(r)) => reports.extend(r),
                Err(e) => return Err(e),
            }
        }
        Ok((Catalog { definitions: defs }, reports))
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Definition>> {
        self.definitions.iter().find(|d| d.name == name)
    }

    /// The workflow an order reaching `status` should run: triggers on that
    /// status whose `when` holds; the highest priority wins, then the name.
    pub fn select(&self, status: &str, order: &expr::Val, now_ms: i64) -> Option<Arc<Definition>> {
        self.select_with(status, || order.clone(), now_ms)
    }

    /// [`Catalog::select`] with `order` built only if a matching trigger
    /// has a `when` to evaluate: converting an order for CEL costs more
    /// than the rest of a workflow start.
    pub fn select_with(
        &self,
        status: &str,
        order: impl FnOnce() -> expr::Val,
        now_ms: i64,
    ) -> Option<Arc<Definition>> {
        let mut order = Some(order);
        let mut scope: Option<expr::Scope> = None;
        let mut best: Option<&Arc<Definition>> = None;
        for d in &self.definitions {
            let matches_status = d.trigger.on.iter().any(|s| {
                crate::order::TiktokStatus::parse(s) == crate::order::TiktokStatus::parse(status)
            });
            if !matches_status {
                continue;
            }
            if let Some(w) = &d.trigger.when {
                let scope = scope.get_or_insert_with(|| expr::Scope {
                    order: order.take().map_or_else(expr::null, |f| f()),
                    steps: expr::null(),
                    vars: expr::null(),
                    event: expr::null(),
                    error: expr::null(),
                    now: now_ms.div_euclid(1000),
                });
                if !w.eval_bool(scope).unwrap_or(false) {
                    continue;
                }
            }
            best = match best {
                Some(b)
                    if (b.trigger.priority, std::cmp::Reverse(&b.name))
                        >= (d.trigger.priority, std::cmp::Reverse(&d.name)) =>
                {
                    Some(b)
                }
                _ => Some(d),
            };
        }
        best.cloned()
    }
}
