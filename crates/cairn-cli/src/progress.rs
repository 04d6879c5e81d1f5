//! How the build log looks: plain lines (logs, CI, pipes) or, on a terminal, a
//! spinner per running stage with the current step, the log scrolling above.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_engine::{PlainProgress, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Bars on a terminal: one spinner per stage that is running.
#[derive(Debug)]
pub struct TtyProgress {
    bars: MultiProgress,
    stages: Mutex<HashMap<String, ProgressBar>>,
}

impl TtyProgress {
    fn new() -> TtyProgress {
        TtyProgress {
            bars: MultiProgress::new(),
            stages: Mutex::new(HashMap::new()),
        }
    }

    fn bar(&self, stage: &str) -> ProgressBar {
        let mut stages = self.stages.lock().unwrap_or_else(|p| p.into_inner());
        stages
            .entry(stage.to_string())
            .or_insert_with(|| {
                let style =
                    ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg} {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner());
                let pb = self.bars.add(ProgressBar::new_spinner().with_style(style));
                pb.set_prefix(stage.to_string());
                pb.enable_steady_tick(Duration::from_millis(120));
                pb
            })
            .clone()
    }
}

impl Progress for TtyProgress {
    fn line(&self, text: &str) {
        if self.bars.println(text).is_err() {
            eprintln!("{text}");
        }
    }

    fn step(&self, stage: &str, n: usize, total: usize, text: &str, _line: &str) {
        self.bar(stage).set_message(format!("{n}/{total} {text}"));
    }

    fn stage_done(&self, stage: &str, line: &str) {
        if let Some(pb) = self
            .stages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(stage)
        {
            pb.finish_and_clear();
        }
        self.line(line);
    }
}

/// `--progress auto|plain|tty`: `auto` is bars when stderr is a terminal and
/// neither `NO_COLOR` nor `CAIRN_NO_PROGRESS` is set.
pub fn choose(mode: &str) -> Arc<dyn Progress> {
    let tty = match mode {
        "tty" => true,
        "plain" => false,
        _ => {
            std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none()
                && std::env::var_os("CAIRN_NO_PROGRESS").is_none()
        }
    };
    if tty {
        Arc::new(TtyProgress::new())
    } else {
        Arc::new(PlainProgress)
    }
}
