//! A real FreeSWITCH for the real-switch tier: where the launcher is, a conf
//! tree made the way an operator makes it (the base configuration plus
//! `freeswitch-conf/install.sh`), the process started and stopped, its log
//! read, and `api` commands sent over a raw Event Socket connection (not
//! fsgate's own client: the switch is checked independently of the code
//! under test).
//!
//! The launcher is `FSGATE_FREESWITCH` (default `../shared/freeswitch/freeswitch`
//! beside the repository); the base configuration `FSGATE_FREESWITCH_CONF`
//! (default `conf/` beside the launcher); the namespace runner for a second,
//! separate switch `FSGATE_NETNS_RUNNER` (default `in-netns` beside the
//! launcher). The test binary itself already runs inside a loopback-only
//! namespace (`scripts/real-switch.sh` puts it there).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The Event Socket the base configuration and `freeswitch-conf/` open.
pub const ESL: &str = "127.0.0.1:8021";
/// Its password (the default of `freeswitch-conf/vars.fsgate.xml`).
pub const ESL_PASSWORD: &str = "ClueCon";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The FreeSWITCH launcher: refuses to go on without one, loudly.
pub fn launcher() -> PathBuf {
    let path = std::env::var_os("FSGATE_FREESWITCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/freeswitch/freeswitch"));
    assert!(
        path.exists(),
        "no FreeSWITCH launcher at {} (set FSGATE_FREESWITCH)",
        path.display()
    );
    path
}

fn beside_launcher(var: &str, name: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| launcher().parent().unwrap().join(name))
}

/// The base configuration the project's files are installed into.
pub fn base_conf() -> PathBuf {
    beside_launcher("FSGATE_FREESWITCH_CONF", "conf")
}

/// Where this run keeps its conf trees and logs (the runner script sets it
/// so that it can show the logs and clean up after the binary).
pub fn work_dir() -> PathBuf {
    let dir = std::env::var_os("FSGATE_REAL_SWITCH_WORK")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(format!("target/real-switch/{}", std::process::id())));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Copies the base configuration to `dir/conf`.
pub fn copy_base_conf(dir: &Path) -> PathBuf {
    let conf = dir.join("conf");
    let _ = std::fs::remove_dir_all(&conf);
    std::fs::create_dir_all(dir).unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(base_conf())
        .arg(&conf)
        .status()
        .unwrap();
    assert!(status.success(), "cannot copy {}", base_conf().display());
    conf
}

/// Runs `sh script args…` (install scripts), panicking with its output on failure.
pub fn run_script(script: &Path, args: &[&Path], env: &[(&str, &str)]) {
    let out = Command::new("sh")
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} failed:\n{}{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running FreeSWITCH.
pub struct FreeSwitch {
    child: Mutex<Child>,
    /// Its log folder (`freeswitch.log` inside).
    pub log_dir: PathBuf,
}

impl FreeSwitch {
    /// Starts FreeSWITCH on `conf`, with its own log, db and run folders
    /// under `dir`; `netns` runs it in another namespace through the runner.
    /// Returns once the process is up (not yet ready: see [`FreeSwitch::wait_ready`]).
    pub fn spawn(conf: &Path, dir: &Path, netns: Option<&str>) -> FreeSwitch {
        FreeSwitch::spawn_with_env(conf, dir, netns, &[])
    }

    /// [`FreeSwitch::spawn`] with environment variables (`env-set` reads them).
    pub fn spawn_with_env(
        conf: &Path,
        dir: &Path,
        netns: Option<&str>,
        env: &[(String, String)],
    ) -> FreeSwitch {
        let (log_dir, db, run) = (dir.join("log"), dir.join("db"), dir.join("run"));
        // Its own certs folder: mod_curl's `secure` trusts `cacert.pem` there.
        let certs = dir.join("certs");
        for d in [&log_dir, &db, &run, &certs] {
            std::fs::create_dir_all(d).unwrap();
        }
        let mut cmd = match netns {
            None => Command::new(launcher()),
            Some(ns) => {
                let mut c = Command::new(beside_launcher("FSGATE_NETNS_RUNNER", "in-netns"));
                c.env("FSGATE_NETNS", ns).arg(launcher());
                c
            }
        };
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd.args(["-nc", "-nonat", "-nf", "-conf"])
            .arg(conf)
            .arg("-log")
            .arg(&log_dir)
            .arg("-db")
            .arg(&db)
            .arg("-run")
            .arg(&run)
            .arg("-certs")
            .arg(&certs)
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                std::fs::File::create(dir.join("console.txt")).unwrap(),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("stderr.txt")).unwrap(),
            ));
        let child = spawn_tied_to_this_process(cmd);
        FreeSwitch {
            child: Mutex::new(child),
            log_dir,
        }
    }

    /// Waits until the Event Socket answers and the SIP profile runs.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.lock().unwrap().try_wait().unwrap() {
                panic!(
                    "FreeSWITCH exited with {status} while starting:\n{}",
                    self.console()
                );
            }
            if let Ok(s) = api("sofia status") {
                if s.lines()
                    .any(|l| l.contains("external") && l.contains("RUNNING"))
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "FreeSWITCH not ready within 30 s:\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `marker` shows in the log (a switch in another namespace).
    pub fn wait_log(&self, marker: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log().contains(marker) {
            if let Some(status) = self.child.lock().unwrap().try_wait().unwrap() {
                panic!("FreeSWITCH exited with {status}:\n{}", self.console());
            }
            assert!(
                Instant::now() < deadline,
                "{marker:?} not in the log within 30 s:\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `freeswitch.log` so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_dir.join("freeswitch.log")).unwrap_or_default()
    }

    /// What it printed on the console and stderr (start-up failures).
    pub fn console(&self) -> String {
        let dir = self.log_dir.parent().unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        format!("{}{}", read("console.txt"), read("stderr.txt"))
    }

    /// The log's `[ERR]`, `[CRIT]` and `[ALERT]` lines.
    pub fn errors(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("[ERR]") || l.contains("[CRIT]") || l.contains("[ALERT]"))
            .map(str::to_owned)
            .collect()
    }

    /// [`FreeSwitch::errors`] not logged for a channel (a channel's lines
    /// start with its uuid): the configuration's, not those a test's call
    /// causes on purpose (a route lookup refused over https, say), since the
    /// switch is shared and the tests run in any order.
    pub fn errors_outside_calls(&self) -> Vec<String> {
        let is_uuid =
            |w: &str| w.len() == 36 && w.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
        self.errors()
            .into_iter()
            .filter(|l| !l.split(' ').next().is_some_and(is_uuid))
            .collect()
    }

    /// Stops it (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&self) {
        let mut child = self.child.lock().unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Spawns `cmd` so that it dies with this process, even when a test panics
/// or the binary is killed: PR_SET_PDEATHSIG follows the thread that forked,
/// so the fork happens on a thread that lives as long as the process.
fn spawn_tied_to_this_process(mut cmd: Command) -> Child {
    use std::os::unix::process::CommandExt;
    static SPAWNER: OnceLock<Mutex<std::sync::mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    type SpawnRequest = (Command, std::sync::mpsc::Sender<std::io::Result<Child>>);
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<SpawnRequest>();
        std::thread::spawn(move || {
            for (mut cmd, reply) in rx {
                let _ = reply.send(cmd.spawn());
            }
            // Never reached while the process lives: the sender is static.
        });
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = std::sync::mpsc::channel();
    spawner.lock().unwrap().send((cmd, reply_tx)).unwrap();
    reply_rx
        .recv()
        .unwrap()
        .expect("cannot start the FreeSWITCH launcher")
}

/// The switch every test of the binary shares: the base configuration with
/// the project's files installed by `freeswitch-conf/install.sh`, exactly as
/// `freeswitch-conf/README.md` tells an operator, default variables kept
/// (the daemon at 127.0.0.1:8080, the carrier at 127.0.0.1:5090).
/// A start that failed fails every later test with the same reason.
pub fn shared() -> &'static FreeSwitch {
    static SWITCH: OnceLock<Result<FreeSwitch, String>> = OnceLock::new();
    let started = SWITCH.get_or_init(|| {
        std::panic::catch_unwind(|| {
            let dir = work_dir().join("switch");
            let conf = copy_base_conf(&dir);
            run_script(&repo().join("freeswitch-conf/install.sh"), &[&conf], &[]);
            let fs = FreeSwitch::spawn(&conf, &dir, None);
            fs.wait_ready();
            fs
        })
        .map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    });
    match started {
        Ok(fs) => fs,
        Err(why) => panic!("the shared FreeSWITCH did not start: {why}"),
    }
}

/// Sends `api <command>` over a fresh Event Socket connection and returns
/// the body of the reply.
pub fn api(command: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&ESL.parse().unwrap(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::new();
    read_frame(&mut s, &mut buf)?; // auth/request
    s.write_all(format!("auth {ESL_PASSWORD}\n\n").as_bytes())?;
    let (head, _) = read_frame(&mut s, &mut buf)?;
    if !head.contains("+OK") {
        return Err(std::io::Error::other(format!("auth refused: {head}")));
    }
    s.write_all(format!("api {command}\n\n").as_bytes())?;
    let (_, body) = read_frame(&mut s, &mut buf)?;
    let _ = s.write_all(b"exit\n\n");
    Ok(body)
}

/// One frame: headers up to the blank line, then Content-Length bytes.
fn read_frame(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<(String, String)> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap_or(0));
            if buf.len() >= end + 2 + len {
                let body = String::from_utf8_lossy(&buf[end + 2..end + 2 + len]).into_owned();
                buf.drain(..end + 2 + len);
                return Ok((head, body));
            }
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `fs_cli -x <command>` against a switch in namespace `netns` (through the
/// runner), with `password`: for a switch this process cannot reach itself.
pub fn cli_in(netns: &str, password: &str, command: &str) -> String {
    let out = Command::new(beside_launcher("FSGATE_NETNS_RUNNER", "in-netns"))
        .env("FSGATE_NETNS", netns)
        .arg(beside_launcher("FSGATE_FS_CLI", "fs_cli"))
        .args([
            "-H",
            "127.0.0.1",
            "-P",
            "8021",
            "-p",
            password,
            "-x",
            command,
        ])
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
