//! Panics of the Parquet and Arrow crates on damaged input become errors
//! naming the file.
//!
//! A damaged part can make a dependency panic (an index out of bounds in a
//! footer, an impossible page header). [`decoding`] runs such code, turns a
//! panic into [`Error::Parquet`] (a damaged snapshot, exit 3) and keeps the
//! panic message off the terminal: the process-wide panic hook is wrapped
//! once so that it stays silent on a thread while it decodes.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Once;

use crate::error::{Error, Result};

thread_local! {
    /// Depth of [`decoding`] calls on this thread.
    static DECODING: Cell<u32> = const { Cell::new(0) };
}

static HOOK: Once = Once::new();

fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if DECODING.with(Cell::get) == 0 {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, which decodes `path`; a panic in it is an error saying that
/// `what` failed on a damaged file.
pub(crate) fn decoding<T>(path: &Path, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    install_hook();
    DECODING.with(|d| d.set(d.get() + 1));
    let r = catch_unwind(AssertUnwindSafe(f));
    DECODING.with(|d| d.set(d.get() - 1));
    r.unwrap_or_else(|panic| {
        let cause = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::Parquet {
            path: path.to_owned(),
            message: format!(
                "{what} failed: the file is damaged ({}); export it again or restore it from a copy",
                if cause.is_empty() {
                    "the Parquet decoder gave up"
                } else {
                    cause.as_str()
                }
            ),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_an_error_naming_the_file() {
        let e = decoding::<()>(Path::new("p.parquet"), "reading the footer", || {
            panic!("index out of bounds")
        })
        .unwrap_err();
        assert_eq!(e.category(), crate::error::Category::Snapshot);
        let text = e.to_string();
        assert!(
            text.starts_with("p.parquet: reading the footer failed"),
            "{text}"
        );
        assert!(text.contains("index out of bounds"), "{text}");
        assert_eq!(decoding(Path::new("p"), "x", || Ok(3)).unwrap(), 3);
    }
}
