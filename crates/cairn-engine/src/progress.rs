//! Where the build log goes. The engine says what happens; the caller (the CLI)
//! decides how it looks: plain lines, or bars on a terminal.

use std::fmt;

/// Receives the build log.
pub trait Progress: Send + Sync {
    /// One line of the log (step output, messages, the report).
    fn line(&self, text: &str);

    /// A step of `stage` starts: `n` of `total`, `text` its instruction; `line` is
    /// the log line saying so.
    fn step(&self, stage: &str, n: usize, total: usize, text: &str, line: &str) {
        let _ = (stage, n, total, text);
        self.line(line);
    }

    /// `stage` is finished; `line` is the log line saying so.
    fn stage_done(&self, stage: &str, line: &str) {
        let _ = stage;
        self.line(line);
    }
}

impl fmt::Debug for dyn Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn Progress")
    }
}

/// Plain lines on stderr.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainProgress;

impl Progress for PlainProgress {
    fn line(&self, text: &str) {
        eprintln!("{text}");
    }
}
