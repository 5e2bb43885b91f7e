//! `enid passwords show`: the first passwords of new accounts, for a school admin to hand out.
//! Each is shown once; a protected person's only with `--protected`, by enid id, without name or
//! username.
//!
//! The hand-out is claim, show, confirm: the engine claims the passwords (no other hand-out
//! shows them), this command writes the whole list, flushes it and makes sure it reached its
//! reader, and only then confirms, which forgets them. A write that fails (a full disk,
//! `> /dev/full`, a reader that went away: `| head`) gives every password back and exits 1, so
//! that the admin can simply run it again.
//!
//! Rust ignores SIGPIPE in its binaries, so a write to a pipe whose reader has gone returns
//! `EPIPE` (`ErrorKind::BrokenPipe`) instead of killing the process: that error is handled here
//! as a failed delivery, never as the quiet end that `enid plan | head` gets.

use super::{CliError, io};
use crate::clock;
use crate::engine::Engine;
use crate::engine::passwords::{CLAIM_TIMEOUT, Claim, HandOutRequest};
use chrono::{DateTime, Utc};
use std::fmt::Write as _;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long a pipe's reader, having taken the whole list, may still close its end before the
/// list counts as delivered. A reader that stops early (`head`) closes right after its last
/// read; one that keeps the list (`cat`, `tee`, a pager, a printer spool) holds its end until
/// enid closes its own.
const READER_GRACE: Duration = Duration::from_millis(500);

pub(super) async fn show(
    engine: &Engine,
    request: HandOutRequest,
    json: bool,
    now: Option<DateTime<Utc>>,
    out: &mut (impl Write + AsFd),
) -> Result<ExitCode, CliError> {
    let claim = engine.claim_passwords(&request, clock::now(now)).await?;
    if claim.held_elsewhere > 0 {
        eprintln!("enid: note: {}", held_elsewhere(claim.held_elsewhere));
    }
    let text = render(&claim, &request, json)?;
    if claim.passwords.is_empty() {
        out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(io)?;
        return unreadable(&claim);
    }
    if let Err(e) = deliver(out, text.as_bytes()) {
        let why = match e.kind() {
            std::io::ErrorKind::BrokenPipe => "the reader of the output closed it before taking all of it".to_string(),
            _ => format!("cannot write the output: {e}"),
        };
        let n = claim.passwords.len();
        return Err(CliError::Message(match engine.release_claim(&claim.id, &why, clock::now(now)).await {
            Ok(_) => format!(
                "{why}; nothing was forgotten: the {n} first password(s) of this hand-out are kept. Run it again \
                 with the output going where it can be written in full"
            ),
            Err(release) => format!(
                "{why}; nothing was forgotten, but giving the {n} first password(s) back failed ({release}): the \
                 next hand-out shows them again after {} minutes",
                CLAIM_TIMEOUT.num_minutes()
            ),
        }));
    }
    let forgotten = engine.confirm_handout(&claim.id, clock::now(now)).await?;
    if forgotten < claim.passwords.len() {
        // The claim lapsed while the reader held the output, and another hand-out took some.
        eprintln!(
            "enid: warning: {} of these first passwords were also given to another hand-out, because this one \
             took longer than {} minutes to deliver them",
            claim.passwords.len() - forgotten,
            CLAIM_TIMEOUT.num_minutes()
        );
    }
    unreadable(&claim)
}

/// The hand-out's whole output, built before any of it is written.
fn render(claim: &Claim, request: &HandOutRequest, json: bool) -> Result<String, CliError> {
    let message = |e: std::fmt::Error| CliError::Message(e.to_string());
    let mut text = String::new();
    if json {
        text = serde_json::to_string_pretty(&claim.passwords).map_err(|e| CliError::Message(e.to_string()))?;
        text.push('\n');
        return Ok(text);
    }
    if claim.passwords.is_empty() {
        writeln!(
            text,
            "No first passwords to hand out{}{}. Each is shown once; one not shown within [state] \
             password_handout_days is forgotten, and the account then needs a password set by hand.",
            match (&request.school, request.protected) {
                (_, true) => " for protected persons".to_string(),
                (Some(s), _) => format!(" for school unit {s}"),
                (None, _) => String::new(),
            },
            match claim.held_elsewhere {
                0 => String::new(),
                n => format!(" now ({})", held_elsewhere(n)),
            }
        )
        .map_err(message)?;
        return Ok(text);
    }
    if request.protected {
        writeln!(text, "{:<38} {:<12} {:<20} PASSWORD", "ENID ID", "TARGET", "SET").map_err(message)?;
        for h in &claim.passwords {
            writeln!(text, "{:<38} {:<12} {:<20} {}", h.identity, h.target, h.set_at, h.password.expose())
                .map_err(message)?;
        }
    } else {
        writeln!(text, "{:<20} {:<30} {:<12} {:<10} PASSWORD", "USERNAME", "NAME", "TARGET", "SCHOOL")
            .map_err(message)?;
        for h in &claim.passwords {
            writeln!(
                text,
                "{:<20} {:<30} {:<12} {:<10} {}",
                h.username.as_deref().unwrap_or("-"),
                h.display_name.as_deref().unwrap_or("-"),
                h.target,
                h.school,
                h.password.expose()
            )
            .map_err(message)?;
        }
    }
    writeln!(
        text,
        "\n{} first password(s) shown; enid forgets them once this list is written in full. The user must choose \
         a new one at the first logon.",
        claim.passwords.len()
    )
    .map_err(message)?;
    Ok(text)
}

fn held_elsewhere(n: usize) -> String {
    format!(
        "{n} first password(s) of those asked for are held by another hand-out in progress; if it does not \
         finish, they come back {} minutes after it began",
        CLAIM_TIMEOUT.num_minutes()
    )
}

/// Why some passwords could not be read, on stderr; `Err` (exit 1) when there are any.
fn unreadable(claim: &Claim) -> Result<ExitCode, CliError> {
    for u in &claim.unreadable {
        eprintln!("enid: {u}");
    }
    match claim.unreadable.as_slice() {
        [] => Ok(ExitCode::SUCCESS),
        [one] => Err(CliError::Message(one.clone())),
        [first, ..] => Err(CliError::Message(format!(
            "{} first passwords cannot be read (first: {first})",
            claim.unreadable.len()
        ))),
    }
}

/// Writes `bytes` in full and makes sure they left enid: flushed, on disk for a file (a full
/// disk may only show at `fsync`), and taken by the reader of a pipe that is still there.
fn deliver(out: &mut (impl Write + AsFd), bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(bytes)?;
    out.flush()?;
    let fd = out.as_fd();
    let file = std::fs::File::from(fd.try_clone_to_owned()?);
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        return file.sync_all();
    }
    if std::os::unix::fs::FileTypeExt::is_fifo(&kind) {
        return taken_by_reader(fd);
    }
    Ok(())
}

/// Waits until the reader of the pipe `fd` has taken everything written to it, and a moment
/// more ([`READER_GRACE`]): a write succeeds once the bytes are in the pipe's buffer, so a
/// reader that stops after a few lines (`| head -n 3`) and closes its end would otherwise lose
/// the rest unseen. A reader gone before that is a failed delivery (`BrokenPipe`).
fn taken_by_reader(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    // Polling the writing end reports `POLLERR` once no reader holds the pipe.
    let reader_gone = |wait: Duration| -> std::io::Result<bool> {
        let mut fds = [PollFd::new(&fd, PollFlags::empty())];
        let timeout = Timespec { tv_sec: 0, tv_nsec: i64::from(wait.subsec_nanos()) };
        poll(&mut fds, Some(&timeout))?;
        Ok(fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP))
    };
    let gone = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
    loop {
        if reader_gone(Duration::from_millis(20))? {
            return Err(gone());
        }
        if rustix::io::ioctl_fionread(fd)? == 0 {
            break;
        }
    }
    let until = Instant::now() + READER_GRACE;
    while let Some(left) = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
        if reader_gone(left.min(Duration::from_millis(100)))? {
            return Err(gone());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn list(lines: usize) -> Vec<u8> {
        (0..lines).map(|i| format!("user.{i:06} Xy3#abcdEFGH\n")).collect::<String>().into_bytes()
    }

    #[test]
    fn a_pipe_whose_reader_is_gone_is_a_failed_delivery_not_a_signal() {
        // Closed before anything is written: the write itself fails with EPIPE (SIGPIPE ignored).
        let (reader, mut writer) = std::io::pipe().unwrap();
        drop(reader);
        assert_eq!(deliver(&mut writer, &list(3)).unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
        // A list larger than the pipe's buffer, its reader gone after a few bytes: a later write fails.
        let (mut reader, mut writer) = std::io::pipe().unwrap();
        let head = std::thread::spawn(move || {
            let mut first = [0u8; 10];
            reader.read_exact(&mut first).unwrap();
        });
        assert_eq!(deliver(&mut writer, &list(20_000)).unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
        head.join().unwrap();
        // A small list the pipe holds whole, its reader gone after taking part of it (`head`).
        let (mut reader, mut writer) = std::io::pipe().unwrap();
        let head = std::thread::spawn(move || {
            let mut first = [0u8; 10];
            reader.read_exact(&mut first).unwrap();
        });
        assert_eq!(deliver(&mut writer, &list(3)).unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
        head.join().unwrap();
    }

    #[test]
    fn a_pipe_whose_reader_takes_everything_and_waits_for_the_end_is_delivered() {
        let (mut reader, mut writer) = std::io::pipe().unwrap();
        let cat = std::thread::spawn(move || {
            let mut all = Vec::new();
            reader.read_to_end(&mut all).unwrap();
            all
        });
        let text = list(20_000);
        deliver(&mut writer, &text).unwrap();
        drop(writer);
        assert_eq!(cat.join().unwrap(), text);
    }

    #[test]
    fn a_file_is_delivered_once_on_disk_and_a_full_device_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.txt");
        let mut file = std::fs::File::create(&path).unwrap();
        deliver(&mut file, &list(3)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), list(3));
        let mut full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        assert_eq!(deliver(&mut full, &list(3)).unwrap_err().kind(), std::io::ErrorKind::StorageFull);
    }
}
