//! Network namespaces of other processes: opening one by PID, entering it (this thread, or a child
//! before it runs a program), and a raw IP socket inside it for packets the agent sends itself.

use std::fs::File;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// The network namespace of process `pid` (a node container's main process, seen through the host's
/// PID namespace). The host's own namespace is refused: a pid reused by a host process after the node
/// stopped must not get the node's rules.
pub fn open(pid: u32) -> io::Result<File> {
    let ns = File::open(format!("/proc/{pid}/ns/net"))?;
    let host = File::open("/proc/1/ns/net").and_then(|h| inode(&h));
    if host.is_ok_and(|h| inode(&ns).is_ok_and(|i| i == h)) {
        return Err(io::Error::other(format!(
            "pid {pid} is in the host's network namespace, not a node's"
        )));
    }
    Ok(ns)
}

/// The namespace's identity: a restarted container has a new one.
pub fn inode(ns: &File) -> io::Result<u64> {
    Ok(ns.metadata()?.ino())
}

/// Moves the calling thread into `ns`.
pub fn enter(ns: &File) -> io::Result<()> {
    // SAFETY: setns on a valid namespace descriptor affects only the calling thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `program args` inside `ns` with `input` on its standard input; fails with its error output.
pub fn run_in(ns: &File, program: &str, args: &[&str], input: &str) -> Result<(), String> {
    let fd = ns.as_raw_fd();
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only the setns system call runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    // A program that exits early closes its input: its stderr says why, not the broken pipe.
    let written = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes());
    let out = child
        .wait_with_output()
        .map_err(|e| format!("cannot wait for {program}: {e}"))?;
    if out.status.success() {
        written.map_err(|e| format!("cannot write to {program}: {e}"))
    } else {
        Err(format!(
            "{program} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A raw IPv4 socket that sends whole packets (header included) from the namespace it was opened in,
/// marked so the node's queue rule lets them pass.
pub struct RawSender(OwnedFd);

impl RawSender {
    pub fn open(mark: u32) -> io::Result<RawSender> {
        // SAFETY: plain socket calls on a descriptor this function owns.
        unsafe {
            let fd = libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_RAW,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(fd);
            let mark = mark as libc::c_int;
            if libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_MARK,
                &mark as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            ) < 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(RawSender(fd))
        }
    }

    /// Sends `packet` (an IPv4 packet from its header on) to `to`.
    pub fn send(&self, packet: &[u8], to: Ipv4Addr) -> io::Result<()> {
        let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        addr.sin_family = libc::AF_INET as u16;
        addr.sin_addr.s_addr = u32::from(to).to_be();
        // SAFETY: `packet` and `addr` are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                packet.as_ptr() as *const libc::c_void,
                packet.len(),
                0,
                &addr as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
