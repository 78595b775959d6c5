//! Argument helpers shared by the directive handlers: one argument, On/Off, numbers, times.

use std::time::Duration;

use super::ConfError;
use super::parse::Word;
use super::read::Item;

/// Exactly one argument.
pub(super) fn one<'a>(item: &'a Item, what: &str) -> Result<&'a Word, ConfError> {
    match item.args.as_slice() {
        [w] => Ok(w),
        _ => Err(item.err(format!("takes one argument, {what}"))),
    }
}

pub(super) fn on_off(item: &Item, w: &Word) -> Result<bool, ConfError> {
    if w.text.eq_ignore_ascii_case("on") {
        Ok(true)
    } else if w.text.eq_ignore_ascii_case("off") {
        Ok(false)
    } else {
        Err(item.err_at(w, format!("must be On or Off, not '{}'", w.text)))
    }
}

pub(super) fn flag(item: &Item) -> Result<bool, ConfError> {
    let w = one(item, "On or Off")?;
    on_off(item, w)
}

pub(super) fn number<T: std::str::FromStr>(
    item: &Item,
    w: &Word,
    what: &str,
) -> Result<T, ConfError> {
    w.text
        .parse()
        .map_err(|_| item.err_at(w, format!("{what} must be a number, not '{}'", w.text)))
}

/// Whole seconds, or `Nms` when `ms_ok`.
pub(super) fn duration(text: &str, ms_ok: bool) -> Option<Duration> {
    if ms_ok && let Some(ms) = text.strip_suffix("ms") {
        return ms.parse::<u64>().ok().map(Duration::from_millis);
    }
    let s = text.strip_suffix('s').filter(|_| ms_ok).unwrap_or(text);
    s.parse::<u64>().ok().map(Duration::from_secs)
}

pub(super) fn seconds_arg(item: &Item, ms_ok: bool) -> Result<Duration, ConfError> {
    let w = one(
        item,
        if ms_ok {
            "a time in seconds (or Nms)"
        } else {
            "a time in seconds"
        },
    )?;
    duration(&w.text, ms_ok)
        .ok_or_else(|| item.err_at(w, format!("'{}' is not a valid time in seconds", w.text)))
}
