//! The names of health personnel, for the citizen page (after the delay) and the
//! organisation view (at once): the audit log names personnel only
//! by HPR number (the token's `hpr_number`; a name in the chain would be one more copy of
//! personal data in every replica, kept for as long as the chain), so the page looks the
//! name up when it may show it (after `innsyn.personnel_name_delay_s`) in
//! `innsyn.personnel_names_file`: a CSV export of the Health Personnel Register (HPR),
//! `hpr_number,name` per line (a header line `hpr_number,name` is allowed).
//!
//! The file is read at start (an unreadable or malformed file stops the frontend: a typo
//! should not silently hide every name) and again when its modification time changes,
//! looked at no more often than every [`RELOAD_CHECK_INTERVAL_S`] seconds, on a request; a
//! reload that fails keeps the names it had and logs why. At most [`PERSONNEL_NAMES_MAX`]
//! entries, each name at most [`PERSONNEL_NAME_BYTES_MAX`] bytes without control
//! characters, the file at most [`PERSONNEL_NAMES_FILE_BYTES_MAX`] bytes. An HPR number
//! not in the file is shown as the number.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

/// Most personnel in the names file (HPR has about 250 000 active authorisations).
pub const PERSONNEL_NAMES_MAX: usize = 1_000_000;
/// Longest name, bytes.
pub const PERSONNEL_NAME_BYTES_MAX: usize = 200;
/// Largest names file, bytes.
pub const PERSONNEL_NAMES_FILE_BYTES_MAX: u64 = 128 * 1024 * 1024;
/// How often a request may look at the file's modification time, seconds.
pub const RELOAD_CHECK_INTERVAL_S: u64 = 60;
/// Longest HPR number, digits.
const HPR_DIGITS_MAX: usize = 9;

/// Names by HPR number.
pub type Names = Arc<HashMap<String, String>>;

/// Why the names file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NamesError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is wrong (1-based), or the file is too large.
    #[error("{path}: line {line}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line (0: the whole file).
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// The names, kept fresh from the file.
#[derive(Debug)]
pub struct PersonnelNames {
    path: Option<PathBuf>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    names: Names,
    modified: Option<SystemTime>,
    checked: Instant,
}

impl PersonnelNames {
    /// No names (no file configured): every personnel shown by number.
    pub fn none() -> PersonnelNames {
        PersonnelNames {
            path: None,
            state: Mutex::new(State {
                names: Arc::new(HashMap::new()),
                modified: None,
                checked: Instant::now(),
            }),
        }
    }

    /// The names of `path`, read now.
    pub fn load(path: &Path) -> Result<PersonnelNames, NamesError> {
        let (names, modified) = read(path)?;
        Ok(PersonnelNames {
            path: Some(path.to_path_buf()),
            state: Mutex::new(State {
                names: Arc::new(names),
                modified,
                checked: Instant::now(),
            }),
        })
    }

    /// The names now (re-read first when the file changed and the last look is old enough).
    pub fn names(&self) -> Names {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(path) = &self.path
            && state.checked.elapsed().as_secs() >= RELOAD_CHECK_INTERVAL_S
        {
            state.checked = Instant::now();
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            if modified != state.modified {
                match read(path) {
                    Ok((names, modified)) => {
                        tracing::info!(entries = names.len(), "innsyn: personnel names reloaded");
                        state.names = Arc::new(names);
                        state.modified = modified;
                    }
                    Err(e) => tracing::warn!(
                        error = %e,
                        "innsyn: could not reload the personnel names; keeping the old ones"
                    ),
                }
            }
        }
        state.names.clone()
    }
}

/// Reads and checks the names file.
fn read(path: &Path) -> Result<(HashMap<String, String>, Option<SystemTime>), NamesError> {
    let io = |source| NamesError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bad = |line: usize, reason: String| NamesError::Malformed {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > PERSONNEL_NAMES_FILE_BYTES_MAX {
        return Err(bad(
            0,
            format!("larger than {PERSONNEL_NAMES_FILE_BYTES_MAX} bytes"),
        ));
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let names = parse(file).map_err(|(line, reason)| bad(line, reason))?;
    Ok((names, meta.modified().ok()))
}

/// The names of a CSV text: `(line, reason)` of the first wrong line.
pub fn parse(input: impl std::io::Read) -> Result<HashMap<String, String>, (usize, String)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let mut names = HashMap::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 1;
        let record = record.map_err(|e| (line, e.to_string()))?;
        let (Some(hpr), Some(name), None) = (record.get(0), record.get(1), record.get(2)) else {
            return Err((line, "must be two fields: hpr_number,name".into()));
        };
        if line == 1 && hpr.eq_ignore_ascii_case("hpr_number") {
            continue;
        }
        if hpr.is_empty() || hpr.len() > HPR_DIGITS_MAX || !hpr.bytes().all(|b| b.is_ascii_digit())
        {
            return Err((
                line,
                format!("hpr_number must be 1 to {HPR_DIGITS_MAX} digits"),
            ));
        }
        if name.is_empty()
            || name.len() > PERSONNEL_NAME_BYTES_MAX
            || name.chars().any(char::is_control)
        {
            return Err((
                line,
                format!(
                    "name must be 1 to {PERSONNEL_NAME_BYTES_MAX} bytes, no control characters"
                ),
            ));
        }
        if names.len() >= PERSONNEL_NAMES_MAX {
            return Err((line, format!("more than {PERSONNEL_NAMES_MAX} personnel")));
        }
        if names.insert(hpr.to_owned(), name.to_owned()).is_some() {
            return Err((line, format!("HPR number {hpr} is repeated")));
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_with_or_without_a_header() {
        let n = parse(
            "hpr_number,name\n1234567,Kari Nordmann\n7654321,\"Ola, Nordmann\"\n 1111111 , Per \n"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(n["1234567"], "Kari Nordmann");
        assert_eq!(n["7654321"], "Ola, Nordmann");
        assert_eq!(n["1111111"], "Per");
        let n = parse("1234567,Kari Nordmann\n".as_bytes()).unwrap();
        assert_eq!(n.len(), 1);
    }

    #[test]
    fn a_wrong_line_is_named() {
        for (text, line) in [
            ("1234567\n", 1),
            ("1234567,Kari,x\n", 1),
            ("1234567,Kari\nabc,Ola\n", 2),
            ("1234567,Kari\n1234567,Ola\n", 2),
            ("1234567,\n", 1),
            ("1234567890,Kari\n", 1),
            ("1234567,Kari\u{7}\n", 1),
        ] {
            assert_eq!(parse(text.as_bytes()).unwrap_err().0, line, "{text:?}");
        }
    }

    #[test]
    fn a_changed_file_is_read_again_and_a_broken_one_keeps_the_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hpr.csv");
        std::fs::write(&path, "1234567,Kari Nordmann\n").unwrap();
        let names = PersonnelNames::load(&path).unwrap();
        assert_eq!(names.names()["1234567"], "Kari Nordmann");
        // Too soon to look again.
        std::fs::write(&path, "1234567,Kari Hansen\n").unwrap();
        assert_eq!(names.names()["1234567"], "Kari Nordmann");
        let age = |n: &PersonnelNames, modified: Option<SystemTime>| {
            let mut s = n.state.lock().unwrap();
            s.checked =
                Instant::now() - std::time::Duration::from_secs(RELOAD_CHECK_INTERVAL_S + 1);
            s.modified = modified;
        };
        age(&names, None);
        assert_eq!(names.names()["1234567"], "Kari Hansen");
        std::fs::write(&path, "not,a,names,file\n").unwrap();
        age(&names, None);
        assert_eq!(
            names.names()["1234567"],
            "Kari Hansen",
            "the last good names"
        );
        assert!(
            PersonnelNames::load(&path).is_err(),
            "but a start refuses it"
        );
        assert!(PersonnelNames::load(&dir.path().join("missing.csv")).is_err());
        assert!(PersonnelNames::none().names().is_empty());
    }
}
