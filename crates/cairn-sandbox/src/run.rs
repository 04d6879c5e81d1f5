//! The engine's side of a step: prepare the step dirs, start the helper, stream its
//! output, read its status.

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::Error;
use crate::helper::{HELPER_ENV, Status};
use crate::plan::{PROVIDED_FILES, empty_lower, scaffold_entries};
use crate::spec::StepSpec;

/// How a step ended when the sandbox itself worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// The process exited with this code (0 = success).
    Exited(i32),
    /// The process was killed by this signal.
    Signaled(i32),
    /// The step ran longer than its timeout and was killed with all its processes.
    TimedOut(std::time::Duration),
}

/// Which stream a line of step output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// stdout.
    Stdout,
    /// stderr.
    Stderr,
}

fn mkdir(p: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(p).map_err(|e| Error::io("create dir", p, e))
}

fn write(p: &Path, data: &str) -> Result<(), Error> {
    std::fs::write(p, data).map_err(|e| Error::io("write", p, e))
}

/// Creates the step's directories, the scaffold lower and the provided files.
pub fn prepare(spec: &StepSpec) -> Result<(), Error> {
    let d = &spec.dirs;
    for p in [
        &d.upper,
        &d.work,
        &d.rootfs,
        &d.scaffold,
        &d.provided,
        &d.staging,
    ] {
        mkdir(p)?;
    }
    mkdir(&empty_lower(spec))?;
    let (dirs, files) = scaffold_entries(spec);
    for dir in dirs {
        mkdir(&d.scaffold.join(dir))?;
    }
    for f in files {
        let p = d.scaffold.join(f);
        if let Some(parent) = p.parent() {
            mkdir(parent)?;
        }
        write(&p, "")?;
    }
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{}\n",
        spec.hostname
    );
    for (name, text) in PROVIDED_FILES
        .iter()
        .zip([hosts, resolv, format!("{}\n", spec.hostname)])
    {
        write(&d.provided.join(name), &text)?;
    }
    Ok(())
}

/// Runs one step in a fresh sandbox; `log` receives every output line as it comes.
///
/// Must be called from inside the build namespace (see [`crate::userns`]).
/// A step that runs longer than `timeout` is killed (with every process of its PID
/// namespace) and reported as [`StepOutcome::TimedOut`].
pub async fn run_step(
    spec: &StepSpec,
    log: &(dyn Fn(Stream, &str) + Sync),
    timeout: Option<std::time::Duration>,
) -> Result<StepOutcome, Error> {
    prepare(spec)?;
    let exe = std::env::current_exe().map_err(|e| Error::sys("current_exe", e))?;
    let mut child = tokio::process::Command::new(exe)
        .env_clear()
        .env(HELPER_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::sys("start the sandbox helper", e))?;
    let mut line = serde_json::to_vec(spec).map_err(|e| Error::Invalid(e.to_string()))?;
    line.push(b'\n');
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(&line)
        .await
        .map_err(|e| Error::sys("send the step to the helper", e))?;
    let out = child.stdout.take().expect("piped stdout");
    let err = child.stderr.take().expect("piped stderr");
    let pump = |r, s| async move {
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            log(s, &l);
        }
    };
    let wait = async {
        match timeout {
            None => child.wait().await.map(Some),
            Some(limit) => match tokio::time::timeout(limit, child.wait()).await {
                Ok(status) => status.map(Some),
                Err(_) => {
                    // Killing the helper kills PID 1 (its death signal), and so the step.
                    child.kill().await?;
                    Ok(None)
                }
            },
        }
    };
    let (_, _, status) = tokio::join!(
        pump(
            Box::new(out) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Stream::Stdout
        ),
        pump(Box::new(err), Stream::Stderr),
        wait
    );
    drop(stdin);
    let Some(helper) = status.map_err(|e| Error::sys("wait for the sandbox helper", e))? else {
        return Ok(StepOutcome::TimedOut(timeout.unwrap_or_default()));
    };
    let text = std::fs::read_to_string(&spec.dirs.status).unwrap_or_default();
    match serde_json::from_str::<Status>(&text) {
        Ok(Status::Exited(c)) => Ok(StepOutcome::Exited(c)),
        Ok(Status::Signaled(s)) => Ok(StepOutcome::Signaled(s)),
        Ok(Status::SetupFailed(m)) => Err(Error::Setup(m)),
        Ok(Status::ActionFailed(m)) => Err(Error::Action(m)),
        Err(_) => Err(Error::HelperDied(helper.to_string())),
    }
}
