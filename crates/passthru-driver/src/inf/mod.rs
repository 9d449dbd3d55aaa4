//! A parser for Windows INF files, the text files that describe a driver package.
//!
//! [`Inf::parse`] reads UTF-16 (LE/BE, with a byte-order mark), UTF-8 and ANSI (Windows-1252)
//! files, applies the syntax rules (sections, continuations, comments, quotes) and substitutes
//! `%strkey%` tokens from `[Strings]`. It never fails on a damaged line: the line is skipped or
//! read as well as possible and a warning with its line number is kept in [`Inf::warnings`].
//! Typed views of the directives passthru needs (`[Version]`, `DriverVer`, `DestinationDirs`,
//! `CopyFiles`, `SourceDisksFiles`, `CopyINF`, models and install sections) are in
//! [`directives`].

mod decode;
pub mod directives;
mod strings;
mod syntax;

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

pub use decode::TextEncoding;
pub use directives::{
    CopyFileOp, DestDir, DriverVer, InstallSection, PackageFileDecl, ServiceInstall,
    SourceDiskFile, VersionInfo,
};

/// Something in an INF file that was skipped or read with a guess.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InfWarning {
    /// 1-based line number (0 when the warning is about the whole file).
    pub line: usize,
    /// What was wrong and what the parser did about it.
    pub message: String,
}

impl InfWarning {
    pub(crate) fn new(line: usize, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for InfWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

/// Why a file could not be read as an INF at all.
#[derive(Debug, thiserror::Error)]
pub enum InfError {
    /// The text has no `[section]` at all.
    #[error(
        "this is not an INF file: no `[section]` header was found in {bytes} bytes \
         (read as {encoding:?}); check that the path names the driver's .inf file"
    )]
    NoSections {
        /// Size of the input.
        bytes: usize,
        /// The encoding it was read in.
        encoding: TextEncoding,
    },
}

/// One logical line of a section, after string substitution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// 1-based line where it starts.
    pub line: usize,
    /// The part before an unquoted `=`, if there was one.
    pub key: Option<String>,
    /// The comma-separated values (empty fields kept as empty strings).
    pub values: Vec<String>,
}

impl Entry {
    /// The value at `index`, if present and not empty.
    pub fn value(&self, index: usize) -> Option<&str> {
        self.values
            .get(index)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// A section: its name as written and its entries in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    /// Name as written in the first header.
    pub name: String,
    /// 1-based line of the first header.
    pub line: usize,
    /// Entries, in file order (merged when the section appears more than once).
    pub entries: Vec<Entry>,
}

impl Section {
    /// Entries whose key equals `key` (case-insensitive).
    pub fn entries_for<'a>(&'a self, key: &str) -> impl Iterator<Item = &'a Entry> + use<'a> {
        let key = key.to_owned();
        self.entries.iter().filter(move |entry| {
            entry
                .key
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case(&key))
        })
    }

    /// The first value of the first entry with `key`.
    pub fn first_value(&self, key: &str) -> Option<&str> {
        self.entries_for(key).find_map(|entry| entry.value(0))
    }
}

/// A parsed INF file.
#[derive(Debug, Clone)]
pub struct Inf {
    sections: Vec<Section>,
    /// Lower-case section name → index into `sections`.
    index: HashMap<String, usize>,
    encoding: TextEncoding,
    warnings: Vec<InfWarning>,
}

impl Inf {
    /// Parses INF bytes in any encoding Windows accepts.
    pub fn parse(bytes: &[u8]) -> Result<Self, InfError> {
        let decoded = decode::decode(bytes);
        let mut warnings = Vec::new();
        if decoded.had_errors {
            warnings.push(InfWarning::new(
                0,
                format!(
                    "some bytes are not valid {:?}; they were replaced by U+FFFD",
                    decoded.encoding
                ),
            ));
        }
        let raw = syntax::lex(&decoded.text, &mut warnings);
        if raw.is_empty() {
            return Err(InfError::NoSections {
                bytes: bytes.len(),
                encoding: decoded.encoding,
            });
        }
        let table = strings::StringTable::from_sections(&raw);
        let sections: Vec<Section> = raw
            .into_iter()
            .map(|section| {
                let is_strings = section.name.to_ascii_lowercase().starts_with("strings");
                let entries = section
                    .entries
                    .into_iter()
                    .map(|entry| {
                        if is_strings {
                            return Entry {
                                line: entry.line,
                                key: entry.key,
                                values: entry.values,
                            };
                        }
                        let line = entry.line;
                        Entry {
                            line,
                            key: entry
                                .key
                                .map(|key| table.substitute(&key, line, &mut warnings)),
                            values: entry
                                .values
                                .iter()
                                .map(|value| table.substitute(value, line, &mut warnings))
                                .collect(),
                        }
                    })
                    .collect();
                Section {
                    name: section.name,
                    line: section.line,
                    entries,
                }
            })
            .collect();
        let index = sections
            .iter()
            .enumerate()
            .map(|(at, section): (usize, &Section)| (section.name.to_ascii_lowercase(), at))
            .collect();
        Ok(Self {
            sections,
            index,
            encoding: decoded.encoding,
            warnings,
        })
    }

    /// The section named `name` (case-insensitive).
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.index
            .get(&name.to_ascii_lowercase())
            .map(|&at| &self.sections[at])
    }

    /// Every section in file order.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// The encoding the file was read in.
    pub fn encoding(&self) -> TextEncoding {
        self.encoding
    }

    /// Lines that were skipped or guessed at while parsing.
    pub fn warnings(&self) -> &[InfWarning] {
        &self.warnings
    }
}

#[cfg(test)]
mod tests;
