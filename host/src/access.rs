//! Whether a command may create what it uses: only `eddy run` and `eddy snapshot` create the
//! state folder, the lease table and the dead-letter table or file; the commands that inspect
//! (`eddy leases`, `eddy dead-letter list`, ...) refuse what is missing instead, so that a
//! mistyped name is an error, not a new (billed) empty table.

/// What a command may do to the places it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `eddy run`, `eddy snapshot`: create what is missing.
    Work,
    /// Commands that inspect: what is missing is an error; nothing is created.
    Inspect,
}
