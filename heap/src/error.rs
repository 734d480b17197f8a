//! Why a dump gives no report at all: the file cannot be read, it is not a
//! heap dump, it changed between two passes, it is too big for the dominator
//! tree, or the object asked for is not in it. (Damage after the header is
//! no error: it gives a partial report with a warning.)

use std::fmt;
use std::io;

use crate::input::ParseError;

/// An error of [`crate::analyze`] and its kin. Its message names the file,
/// the byte offset or the object at fault, and says what went wrong in
/// full: the cause is part of the message, so [`std::error::Error::source`]
/// gives none (callers read it from the variant).
#[derive(Debug)]
pub enum Error {
    /// The file cannot be opened or read.
    Read { file: String, cause: io::Error },
    /// Not a heap dump: its header cannot be parsed.
    NotADump { file: String, cause: ParseError },
    /// Read again (for the dominator tree, or for the objects a report
    /// names), the dump did not parse as it did the first time.
    Changed(ParseError),
    /// More objects and classes than the dominator tree numbers.
    TooManyObjects { objects: usize, most: u32 },
    /// More references than the dominator tree's offsets hold.
    TooManyReferences,
    /// `--path-to-root` names no object or class of the dump.
    NoSuchObject(u64),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Read { file, cause } => write!(f, "cannot read {file}: {cause}"),
            Error::NotADump { file, cause } => write!(f, "{file}: {cause}"),
            Error::Changed(cause) => write!(f, "the dump changed while it was read: {cause}"),
            Error::TooManyObjects { objects, most } => write!(
                f,
                "{objects} objects: the dominator tree takes at most {most} objects"
            ),
            Error::TooManyReferences => {
                f.write_str("more than 4 billion references: too many for the dominator tree")
            }
            Error::NoSuchObject(id) => {
                write!(f, "--path-to-root: no object 0x{id:x} ({id}) in the dump")
            }
        }
    }
}

impl std::error::Error for Error {}
