//! c2's own output failing: a reader that stops reading ends a read-only
//! command quietly (exit 0), a full disk is one error line, and a command
//! that changes things (its release commands included) runs to its end
//! whatever becomes of its output.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::common::{self, http, wait_until, write_file, Env};

/// A c2 process, killed if the test fails before it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A release serving HTTP whose start command first prints `loud` (a shell
/// command), so it writes to its stdout while c2's reader is gone.
fn publish_loud(env: &Env, name: &str, loud: &str) {
    let label = name.trim_end_matches(".zip");
    env.http_release(name)
        .set(
            "startCommand",
            json!(format!("{loud} && python3 serve.py $(cat port) {label}")),
        )
        .publish();
}

#[test]
fn list_releases_ends_quietly_when_its_reader_stops_after_one_line() {
    let env = Env::new();
    // More names than a pipe holds (64 KiB): c2 is still writing when the
    // reader goes away.
    for n in 0..3000 {
        write_file(
            &env.path(&format!(
                "store/a-release-with-a-rather-long-name-{n:04}.zip"
            )),
            "",
        );
    }
    let mut child = env.c2(&["list-releases"]).spawn();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(
        first.starts_with("a-release-with-a-rather-long-name-"),
        "{first}"
    );
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(stderr, "", "a closed stdout is no error");
}

#[test]
fn status_to_a_full_disk_is_one_error_line() {
    let noproxy = Env::new();
    let mut proxy = Env::new();
    proxy.proxy(&[("main", "main.example")]);
    for env in [&noproxy, &proxy] {
        let mut run = env.c2(&["status"]);
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        run.cmd.stdout(full);
        let out = run.output();
        assert_eq!(out.code, Some(1), "{out}");
        assert_eq!(
            out.stderr,
            "c2: error: cannot write to stdout: No space left on device (os error 28)\n"
        );
    }
}

#[test]
fn start_completes_when_its_reader_stops_after_one_byte() {
    let mut env = Env::new();
    env.proxy(&[("main", "main.example")]);
    // Its output (over 1 MB) cannot fit in the pipe: the command is still
    // printing when the reader goes away.
    publish_loud(&env, "loud.zip", "seq 1 200000");
    let mut child = env.c2(&["start", "loud.zip"]).spawn();
    let mut stdout = child.stdout.take().unwrap();
    stdout.read_exact(&mut [0u8; 1]).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let port = env.state()["deploys"]["loud"]["port"]
        .as_u64()
        .unwrap_or_else(|| panic!("loud is not in the state: {}", env.state()));
    let answer = http::get(u16::try_from(port).unwrap(), "any", "/");
    assert_eq!(answer.body, "loud /");
}

#[test]
fn a_slave_loop_goes_on_applying_the_master_after_its_reader_left() {
    let mut master = Env::new();
    master.proxy(&[("main", "main.example")]);
    let shared = master.path("shared").to_string_lossy().to_string();
    master.remote(&shared);
    publish_loud(&master, "blue.zip", "echo starting blue");
    publish_loud(&master, "green.zip", "echo starting green");
    master.c2(&["start", "blue.zip"]).ok();
    master.c2(&["connect", "main", "blue"]).ok();

    let slave = master.slave("web1");
    let mut run = slave.c2(&["slave-update", "--repeat", "0.2"]);
    let stderr = std::fs::File::create(slave.path("slave.err")).unwrap();
    let mut child = run
        .cmd
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut running = Running(child);
    for _ in 0..2 {
        stdout.read_line(&mut String::new()).unwrap();
    }
    drop(stdout);

    // A change made after the reader left: applying it runs green's start
    // command, which prints.
    master.c2(&["start", "green.zip"]).ok();
    master.c2(&["connect", "main", "green"]).ok();
    wait_until(Duration::from_secs(30), "the slave serves green", || {
        slave.get("main.example", "/").body == "green /"
    });
    assert!(
        running.0.try_wait().unwrap().is_none(),
        "the slave loop ended: {}",
        slave.read("slave.err")
    );
    common::terminate(running.0.id());
    let status = running.0.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", slave.read("slave.err"));
}

#[test]
fn a_repeat_period_too_long_for_a_duration_or_too_short_to_rest_is_refused() {
    for (period, why) in [
        (
            "1e20",
            "1e20 seconds is more than the longest period, 86400 (one day)",
        ),
        // Once a loop that never rested: "every 0ns".
        (
            "1e-300",
            "1e-300 seconds is less than the shortest period, 0.1",
        ),
    ] {
        let out = Env::new()
            .c2(&["slave-update", "--repeat", period])
            .output();
        assert_eq!(out.code, Some(2), "{out}");
        assert!(
            out.stderr.contains(&format!(
                "invalid value '{period}' for '--repeat <N>': {why}"
            )),
            "{out}"
        );
        assert!(!out.stderr.contains("panicked"), "{out}");
    }
}

#[test]
fn a_daemon_left_by_a_start_command_keeps_writing_to_c2s_reader_after_c2_exits() {
    // `c2 start d.zip | tee deploy.log`: the release starts a background
    // process that prints later, without redirecting its output. c2 exits
    // first; the reader is still there, so the line must reach it and the
    // process must live on (not die of SIGPIPE on a pipe c2 took along).
    let env = Env::new();
    env.release("d.zip")
        .set(
            "startCommand",
            json!("(sleep 0.5; echo late-line; exec sleep 30) & echo $! > pid"),
        )
        .set("stopCommand", json!("kill $(cat pid)"))
        .publish();
    let mut run = env.c2(&["start", "d.zip"]);
    let mut child = run
        .cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let status = child.wait().unwrap();
    assert!(status.success());
    // The reader stays open; the daemon's line arrives after c2 is gone.
    let (lines, got) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen = false;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match got.recv_timeout(left) {
            Ok(line) if line == "late-line" => {
                seen = true;
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let pid: i32 = env.read("deploys/d/pid").trim().parse().unwrap();
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
    env.c2(&["stop", "d"]).ok();
    assert!(seen, "the daemon's line never reached c2's reader");
    assert!(alive, "the daemon died after writing its line");
}

/// `prune` sets releases aside before it deletes them: stdout closing
/// before its first line must not leave them there, hidden from every
/// start yet not deleted.
#[test]
fn prune_finishes_when_its_reader_is_gone_before_the_first_line() {
    let env = Env::new();
    let names: Vec<String> = (0..5).map(|i| format!("r{i}.zip")).collect();
    for name in &names {
        env.release(name).publish();
    }
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut run = env.c2(&["prune", "--keep", "0"]);
    let out = run
        .cmd
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(stderr, "", "a closed stdout is no error");
    assert_eq!(
        crate::publish::everything_in(&env, crate::publish::Store::Dir),
        Vec::<String>::new()
    );
}
