//! One server process started by a harness: its command line ([`Launch`]), an optional
//! [`Wrapper`] that turns it into the [`Command`] actually run (jepsen prefixes
//! `ip netns exec NS env K=V ...`), its log file, and the faults done to it.
//!
//! Every process gets its own process group, `PR_SET_PDEATHSIG = SIGKILL` (it dies with the
//! harness, also when the harness is killed with SIGKILL), stdin from /dev/null, stdout and
//! stderr appended to its log, and an environment without the harness's `KARTOTEK_*` and
//! `RUST_LOG` (so only the config file and [`Launch::env`] configure it). A dropped
//! [`Process`] is killed (after SIGCONT) and reaped.

use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// What to run: program, arguments and the extra environment of the process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Launch {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment (added to the harness's, minus `KARTOTEK_*` and `RUST_LOG`).
    pub env: Vec<(String, String)>,
}

impl Launch {
    /// `binary node --config config` with `env`.
    pub fn node(binary: &Path, config: &Path, env: &[(String, String)]) -> Launch {
        Launch {
            program: binary.to_path_buf(),
            args: vec![
                "node".into(),
                "--config".into(),
                config.display().to_string(),
            ],
            env: env.to_vec(),
        }
    }

    /// The command run when there is no [`Wrapper`].
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// `env K=V ... program args...`: the launch as arguments of another program, with the
    /// environment applying to the program only (not to the wrapper in front of it).
    pub fn env_argv(&self) -> Vec<String> {
        let mut argv = vec!["env".to_owned()];
        argv.extend(self.env.iter().map(|(k, v)| format!("{k}={v}")));
        argv.push(self.program.display().to_string());
        argv.extend(self.args.iter().cloned());
        argv
    }

    /// The command line, for messages.
    pub fn describe(&self) -> String {
        self.env_argv().join(" ")
    }
}

/// Builds the command that runs a [`Launch`] (stdio, process group and environment clean-up
/// are added after it).
pub type Wrapper = Arc<dyn Fn(&Launch) -> Command + Send + Sync>;

/// A server process: not running until [`start`](Process::start)ed.
pub struct Process {
    /// Name for messages (`node 2`).
    pub name: String,
    /// What [`start`](Process::start) runs.
    pub launch: Launch,
    wrapper: Option<Wrapper>,
    log_file: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.name)
            .field("launch", &self.launch)
            .field("wrapped", &self.wrapper.is_some())
            .field("log_file", &self.log_file)
            .field("pid", &self.pid())
            .field("paused", &self.paused)
            .finish()
    }
}

impl Process {
    /// A process `name` running `launch` with output appended to `log_file`.
    pub fn new(name: &str, launch: Launch, log_file: &Path) -> Process {
        Process {
            name: name.to_owned(),
            launch,
            wrapper: None,
            log_file: log_file.to_path_buf(),
            child: None,
            paused: false,
        }
    }

    /// The program it runs.
    pub fn program(&self) -> &Path {
        &self.launch.program
    }

    /// Runs `program` from its next start (a rolling upgrade: the same arguments, config and
    /// data dir, another binary).
    pub fn set_program(&mut self, program: &Path) {
        self.launch.program = program.to_path_buf();
    }

    /// Runs the launch through `wrapper`.
    pub fn with_wrapper(mut self, wrapper: Wrapper) -> Process {
        self.wrapper = Some(wrapper);
        self
    }

    /// Starts the process (nothing if it runs already); writes a line naming it to the log.
    pub fn start(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .with_context(|| format!("opening {}", self.log_file.display()))?;
        writeln!(
            log,
            "=== kartotek-testkit: starting {}: {} ===",
            self.name,
            self.launch.describe()
        )?;
        let mut cmd = match &self.wrapper {
            Some(w) => w(&self.launch),
            None => self.launch.command(),
        };
        for (k, _) in std::env::vars_os() {
            if k.to_str()
                .is_some_and(|k| k.starts_with("KARTOTEK_") || k == "RUST_LOG")
            {
                cmd.env_remove(k);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let child = cmd.spawn().with_context(|| {
            format!(
                "starting {} ({:?} {:?})",
                self.name,
                cmd.get_program(),
                cmd.get_args().collect::<Vec<_>>()
            )
        })?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    /// True while there is a process that has not been reaped (it may have exited).
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// True while it is stopped with [`pause`](Process::pause).
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Its pid while it runs.
    pub fn pid(&self) -> Option<Pid> {
        self.child
            .as_ref()
            .and_then(|c| i32::try_from(c.id()).ok())
            .map(Pid::from_raw)
    }

    /// Sends `sig`; false if it is not running or the signal failed.
    pub fn signal(&self, sig: Signal) -> bool {
        self.pid().is_some_and(|pid| kill(pid, sig).is_ok())
    }

    /// SIGSTOP.
    pub fn pause(&mut self) {
        if self.signal(Signal::SIGSTOP) {
            self.paused = true;
        }
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        if self.signal(Signal::SIGCONT) {
            self.paused = false;
        }
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// SIGTERM (after SIGCONT), then `kill -9` when it has not exited within `grace`.
    pub fn stop(&mut self, grace: Duration) {
        self.resume();
        if !self.signal(Signal::SIGTERM) {
            self.kill9();
            return;
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
    }

    /// `kill -9` and start again (on the same data dir: the launch is unchanged).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        self.start()
    }

    /// How it exited, if it did (it still counts as [`running`](Process::running) until
    /// [`reap`](Process::reap)ed).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Forgets a process that exited by itself and says how it exited.
    pub fn reap(&mut self) -> Option<ExitStatus> {
        let status = self.exited()?;
        self.child = None;
        self.paused = false;
        Some(status)
    }

    /// Its log file.
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// Its whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.resume();
        self.kill9();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn sh(script: &str, dir: &Path) -> Process {
        let launch = Launch {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("TESTKIT_X".into(), "42".into())],
        };
        Process::new("sh", launch, &dir.join("sh.log"))
    }

    fn wait_for(mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn env_reaches_the_process_and_output_goes_to_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = sh(
            "echo x=$TESTKIT_X; echo rust_log=${RUST_LOG:-unset}",
            dir.path(),
        );
        p.start().unwrap();
        wait_for(|| p.exited().is_some());
        assert!(p.running(), "an exited process is running until reaped");
        assert!(p.reap().is_some_and(|s| s.success()));
        assert!(!p.running());
        let log = p.log();
        assert!(
            log.starts_with("=== kartotek-testkit: starting sh"),
            "{log}"
        );
        assert!(log.contains("x=42\n"), "{log}");
        assert_eq!(p.log_tail(1), "rust_log=unset");
    }

    #[test]
    fn pause_resume_kill_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = sh("echo started; exec sleep 60", dir.path());
        p.start().unwrap();
        let first = p.pid().unwrap();
        let started = |p: &Process| p.log().lines().filter(|l| *l == "started").count();
        wait_for(|| started(&p) == 1);
        p.pause();
        assert!(p.paused());
        p.resume();
        assert!(!p.paused());
        p.restart().unwrap();
        assert_ne!(p.pid().unwrap(), first);
        wait_for(|| started(&p) == 2);
        p.kill9();
        assert!(!p.running());
        assert!(p.pid().is_none());
        assert!(p.reap().is_none());
    }

    #[test]
    fn stop_terminates_a_paused_process() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = sh("exec sleep 60", dir.path());
        p.start().unwrap();
        p.pause();
        let started = Instant::now();
        p.stop(Duration::from_secs(5));
        assert!(!p.running());
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn a_wrapper_builds_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let launch = Launch {
            program: "/bin/echo".into(),
            args: vec!["inner".into()],
            env: vec![("A".into(), "1".into())],
        };
        assert_eq!(launch.env_argv(), ["env", "A=1", "/bin/echo", "inner"]);
        let wrapper: Wrapper = Arc::new(|l: &Launch| {
            let mut c = Command::new("/bin/sh");
            c.arg("-c")
                .arg(format!("echo wrapped; {}", l.env_argv().join(" ")));
            c
        });
        let mut p = Process::new("w", launch, &dir.path().join("w.log")).with_wrapper(wrapper);
        p.start().unwrap();
        wait_for(|| p.exited().is_some());
        assert!(p.log().ends_with("wrapped\ninner\n"), "{}", p.log());
    }
}
