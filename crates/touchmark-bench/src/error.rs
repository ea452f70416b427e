//! The one error type of this crate.

use std::error::Error as StdError;

/// Why a benchmark could not run, or why its figures would mean nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The plan asks for something out of range. The message names the setting as
    /// `touchmark bench` spells its flag.
    #[error("{0}")]
    Invalid(String),
    /// A step of the set-up or of a measurement failed; `what` names the step.
    #[error("{what}")]
    Step {
        /// The step.
        what: String,
        /// Why it failed.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// Requests failed, or the counts do not add up: the figures would mean nothing.
    #[error("{0}")]
    Void(String),
    /// cfssl could not be found, started or checked.
    #[error("{0}")]
    Cfssl(String),
    /// A task or thread of the benchmark died.
    #[error("{0} died")]
    Died(&'static str),
}

/// Names the step an error of a lower layer comes from.
pub(crate) trait Context<T> {
    /// Wraps the error as [`Error::Step`] `what`.
    fn context(self, what: impl Into<String>) -> Result<T, Error>;

    /// [`Context::context`], with the step named only on failure.
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T, Error>;
}

impl<T, E: Into<Box<dyn StdError + Send + Sync>>> Context<T> for Result<T, E> {
    fn context(self, what: impl Into<String>) -> Result<T, Error> {
        self.map_err(|e| Error::Step {
            what: what.into(),
            source: e.into(),
        })
    }

    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T, Error> {
        self.map_err(|e| Error::Step {
            what: what().into(),
            source: e.into(),
        })
    }
}
