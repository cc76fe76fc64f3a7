//! The status socket: each client sends one JSON line and gets one JSON line back.
//! A thread per connection reads the request (bounded in size and time), passes it to
//! the run loop and writes the answer, so a slow client never stalls supervision (nor
//! does a `wait` request, which the run loop answers when the state changes).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use super::wake::{Msg, Waker};
use crate::status::{error_line, Request};

/// Binds `path` (creating its directory, replacing a stale socket), non-blocking.
///
/// The socket is bound and listening under a temporary name first and then renamed into
/// place, so a client that sees `path` exist can always connect (bind and listen are two
/// syscalls; a client polling for the file could otherwise get ECONNREFUSED in between).
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let l = UnixListener::bind(&tmp)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Requests read but not yet answered on their connection (their threads still run).
static IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Waits (at most `within`) until every request that was read has its answer written:
/// called just before init exits, so a `wait` answered by the shutdown reaches its client
/// instead of dying with the process.
pub fn flush(within: Duration) {
    let t0 = std::time::Instant::now();
    while IN_FLIGHT.load(std::sync::atomic::Ordering::SeqCst) > 0 && t0.elapsed() < within {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Accepts every pending connection and serves each on a thread.
pub fn accept_all(listener: &UnixListener, waker: &Waker) {
    while let Ok((stream, _)) = listener.accept() {
        let waker = waker.clone();
        let _ = std::thread::Builder::new()
            .name("berth-ctl".into())
            .spawn(move || serve(stream, &waker));
    }
}

fn serve(stream: UnixStream, waker: &Waker) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    let read = BufReader::new(&stream).take(64 * 1024).read_line(&mut line);
    let answer = match read {
        Err(e) => error_line(&format!("cannot read the request: {e}")),
        Ok(_) => match serde_json::from_str::<Request>(line.trim()) {
            Err(e) => error_line(&format!(
                "bad request ({e}); valid: {{\"cmd\":\"status\"}}, {{\"cmd\":\"restart\"|\"stop\"|\"start\",\"service\":\"NAME\"}}, {{\"cmd\":\"wait\",\"state\":\"STATE\",\"timeout_ms\":N}}"
            )),
            Ok(req) => {
                IN_FLIGHT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (tx, rx) = mpsc::channel();
                let within = req.answer_within();
                waker.send(Msg::Ctl(req, tx));
                let answer = rx
                    .recv_timeout(within)
                    .unwrap_or_else(|_| error_line("init did not answer in time"));
                write_answer(&stream, &answer);
                IN_FLIGHT.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                return;
            }
        },
    };
    write_answer(&stream, &answer);
}

fn write_answer(stream: &UnixStream, answer: &str) {
    let mut w = stream;
    let _ = w
        .write_all(answer.as_bytes())
        .and_then(|_| w.write_all(b"\n"));
}
