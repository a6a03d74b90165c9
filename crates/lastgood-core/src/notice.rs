//! Notes for the person at the terminal, found where no progress reporter reaches.
//!
//! Most of what an operation has to say travels in its result or through
//! `journal::Progress`. A few facts turn up deep below both, while a configuration
//! value is being completed: a password file ignored because others can read it, say,
//! which libpq itself would print as a warning. Such a note is not an error (the
//! command may well succeed with peer authentication) and must not be lost, so it is
//! kept here and the binary prints what was kept, once each, on stderr. The library
//! never prints.

use std::sync::Mutex;

static NOTES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Keeps a note for the binary to print (once, however often it is kept).
pub fn emit(text: &str) {
    let mut notes = NOTES.lock().unwrap_or_else(|e| e.into_inner());
    if !notes.iter().any(|n| n == text) {
        notes.push(text.to_owned());
    }
}

/// The notes kept so far, in order; they are kept no longer.
pub fn take() -> Vec<String> {
    std::mem::take(&mut *NOTES.lock().unwrap_or_else(|e| e.into_inner()))
}
