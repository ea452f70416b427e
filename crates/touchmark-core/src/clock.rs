//! Injected time, so that order windows and certificate validity can be tested without the wall clock.

use std::sync::Mutex;

use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time, in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that reads a time set by the test that owns it.
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    /// A clock stopped at `at`.
    pub fn new(at: OffsetDateTime) -> Self {
        Self(Mutex::new(at))
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: OffsetDateTime) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Formats a timestamp the way Touchmark writes it everywhere: RFC 3339, UTC, milliseconds.
///
/// `2026-11-21T05:38:45.123Z`. A fixed width keeps canonical event bytes unambiguous.
pub fn format_timestamp(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// Parses an RFC 3339 timestamp.
///
/// # Errors
/// A message naming what is wrong when `text` is not an RFC 3339 timestamp.
pub fn parse_timestamp(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("`{}` is not an RFC 3339 timestamp: {e}", truncate(text, 40)))
}

/// Cuts `text` to at most `max` characters for an error message.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.escape_debug().to_string()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{}…", cut.escape_debug())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn timestamps_have_a_fixed_width() {
        let at = parse_timestamp("2026-11-21T05:38:45.1234+02:00").unwrap();
        assert_eq!(format_timestamp(at), "2026-11-21T03:38:45.123Z");
        let at = parse_timestamp("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(format_timestamp(at), "2026-01-02T03:04:05.000Z");
    }

    #[test]
    fn manual_clock_moves() {
        let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH);
        clock.set(OffsetDateTime::UNIX_EPOCH + time::Duration::days(1));
        assert_eq!(clock.now().day(), 2);
    }
}
