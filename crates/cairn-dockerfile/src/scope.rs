//! A small helper for the ARG/ENV scoping rules the engine applies.

use std::collections::BTreeMap;

use crate::ast::ArgDecl;
use crate::expand::{ExpandError, expand_word};

/// Variables visible while evaluating instructions, following Docker's
/// rules:
///
/// * global ARGs (before the first FROM) are visible only in FROM lines,
///   unless a stage re-declares them with `ARG NAME` (no default), which
///   imports the global value;
/// * an ARG's value is the build argument given by the user if any,
///   otherwise its (expanded) default;
/// * ENV values shadow ARG values of the same name.
///
/// Create one with [`ArgScope::new`] for the global scope, then
/// [`ArgScope::stage`] for each stage.
#[derive(Debug, Clone, Default)]
pub struct ArgScope {
    build_args: BTreeMap<String, String>,
    globals: BTreeMap<String, Option<String>>,
    args: BTreeMap<String, Option<String>>,
    env: BTreeMap<String, String>,
}

impl ArgScope {
    /// A global scope with the user's `--build-arg` values.
    pub fn new(build_args: BTreeMap<String, String>) -> Self {
        ArgScope {
            build_args,
            ..ArgScope::default()
        }
    }

    /// Looks a variable up: ENV first, then declared ARGs.
    pub fn get(&self, name: &str) -> Option<String> {
        if let Some(v) = self.env.get(name) {
            return Some(v.clone());
        }
        self.args.get(name).cloned().flatten()
    }

    /// Declares an ARG (expanding its name and default in this scope).
    /// A declaration without default and without build argument is
    /// visible but unset; in a stage it imports the global value.
    ///
    /// # Errors
    /// Expansion errors in the name or default.
    pub fn declare(&mut self, decl: &ArgDecl, escape: char) -> Result<(), ExpandError> {
        let lookup = |n: &str| self.get(n);
        let name = expand_word(&decl.name, &lookup, escape)?;
        let default = match &decl.default {
            Some(d) => Some(expand_word(d, &lookup, escape)?),
            None => self.globals.get(&name).cloned().flatten(),
        };
        let value = self.build_args.get(&name).cloned().or(default);
        self.args.insert(name, value);
        Ok(())
    }

    /// Sets an ENV variable (already expanded).
    pub fn set_env(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.env.insert(name.into(), value.into());
    }

    /// A fresh stage scope: global ARGs become importable, nothing else
    /// is visible. The base image's ENV must be added with
    /// [`ArgScope::set_env`].
    pub fn stage(&self) -> ArgScope {
        ArgScope {
            build_args: self.build_args.clone(),
            globals: self.args.clone(),
            args: BTreeMap::new(),
            env: BTreeMap::new(),
        }
    }

    /// The lookup closure for [`crate::expand_word`] and
    /// [`crate::Instruction::expanded`].
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |name| self.get(name)
    }
}
