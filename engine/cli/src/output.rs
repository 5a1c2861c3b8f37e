//! Standard output that a closed pipe cannot break: `flow show last | head -1`
//! must end quietly, with the command's own exit status, where `println!` would
//! panic. Once a write finds the reader gone, later writes are skipped.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes to stdout unless its reader has gone away.
pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CLOSED.store(true, Ordering::Relaxed);
        } else {
            // Anything else (a full disk under a redirect) is worth a word, once.
            if !CLOSED.swap(true, Ordering::Relaxed) {
                eprintln!("error: cannot write the output: {e}");
            }
        }
    }
}

/// `println!` for the CLI: see [`write_stdout`].
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for the CLI: see [`write_stdout`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*))
    };
}
