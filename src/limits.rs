//! The ranges every number a user gives must fall in, checked once where it
//! enters (a flag, an environment variable, a plan file), so nothing deeper
//! can overflow, divide by zero or panic on it (`Duration::from_secs_f64`
//! panics on 1e20, NaN and negatives). Each error names the setting and its
//! range (exit 2).

use std::time::Duration;

use crate::error::{Error, Result};

/// The most workers any command starts: far above what pays on any machine,
/// low enough that a typo cannot open thousands of sessions.
pub const MAX_JOBS: usize = 256;

/// PostgreSQL's `lock_timeout` is an `int` of milliseconds.
pub const MAX_LOCK_WAIT_SECS: f64 = i32::MAX as f64 / 1000.0;

/// A `-j/--jobs` value: 1 to [`MAX_JOBS`].
///
/// # Errors
/// A usage error naming the range.
pub fn jobs(jobs: Option<usize>) -> Result<Option<usize>> {
    match jobs {
        Some(j) if !(1..=MAX_JOBS).contains(&j) => {
            Err(Error::usage(format!("-j/--jobs must be from 1 to {MAX_JOBS}, not {j}")))
        }
        j => Ok(j),
    }
}

/// A number of seconds for `what`: more than 0 and at most `max`.
///
/// # Errors
/// A usage error naming `what` and the range, for NaN, infinities, zero,
/// negatives and values above `max`.
pub fn seconds(what: &str, secs: f64, max: f64) -> Result<Duration> {
    let fits = secs > 0.0 && secs <= max;
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if fits => Ok(d),
        _ => Err(Error::usage(format!(
            "{what} must be a number of seconds above 0 and at most {max}, not {secs}"
        ))),
    }
}

/// Seconds from the environment variable `var`, `default` when unset.
///
/// # Errors
/// A usage error naming the variable when it is set to anything but a
/// number of seconds in range.
pub fn seconds_from_env(var: &str, default: Duration, max: f64) -> Result<Duration> {
    match std::env::var(var) {
        Err(_) => Ok(default),
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(secs) => seconds(var, secs, max),
            Err(_) => Err(Error::usage(format!("{var} must be a number of seconds, not {v:?}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_numbers_are_usage_errors_not_panics() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e20, 3e6] {
            let e = seconds("--lock-wait-timeout", bad, MAX_LOCK_WAIT_SECS).unwrap_err();
            assert_eq!(e.class(), crate::error::Class::Usage, "{bad}");
        }
        assert_eq!(seconds("x", 1.5, 10.0).unwrap(), Duration::from_millis(1500));
        assert_eq!(
            seconds("x", MAX_LOCK_WAIT_SECS, MAX_LOCK_WAIT_SECS).unwrap().as_millis(),
            i32::MAX as u128
        );
        assert!(jobs(Some(0)).is_err());
        assert!(jobs(Some(usize::MAX)).is_err());
        assert_eq!(jobs(Some(4)).unwrap(), Some(4));
        assert_eq!(jobs(None).unwrap(), None);
    }
}
