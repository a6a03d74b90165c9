//! `Secret<T>`: a value that must not be shown.
//!
//! Its `Debug` and `Display` print `***`, it has no `Serialize`, and the only way to the
//! value is [`Secret::expose`], which is easy to search for in review. Passwords of
//! database URLs and webhook URLs (whose paths carry tokens) are held this way, so that
//! a `{:?}` in a log line or an error can never print them.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself: for the one place that must hand it on (a connection, an
    /// environment variable, a program's stdin), never for display.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_format() {
        let s = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{s} {s:?} {:?}", Some(&s)), "*** *** Some(***)");
        assert_eq!(s.expose(), "hunter2");
    }
}
