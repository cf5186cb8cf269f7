//! Network namespaces of other processes: opening one by PID, entering it (this thread, or a child
//! before it runs a program), and a raw IP socket inside it for packets the agent sends itself.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// The network namespace of node container `container` (its full ID), entered through its process
/// `pid` (seen through the host's PID namespace). Refused — fail closed — unless the process is in that
/// container (its cgroup names the ID) and its namespace is none of: the engine's (that of the
/// container's runtime, the first ancestor of the process outside the container — which must be
/// readable), the host's (PID 1's, where it can be read: some hosts keep it from every process) and the
/// agent's own. The process is pinned by its `/proc` directory while it is checked, so a PID reused
/// in between finds nothing, not another namespace.
pub fn open_node(pid: u32, container: &str) -> io::Result<File> {
    let refused = |why: String| io::Error::new(io::ErrorKind::PermissionDenied, why);
    let own = File::open("/proc/self/ns/net")
        .and_then(|h| inode(&h))
        .map_err(|e| {
            refused(format!(
                "cannot read the agent's own network namespace: {e}"
            ))
        })?;
    if pid == 0 {
        return Err(refused("pid 0 is no process".into()));
    }
    let dir = File::open(format!("/proc/{pid}"))
        .map_err(|e| refused(format!("cannot open process {pid}: {e}")))?;
    let cgroup = read_at(&dir, "cgroup")
        .map_err(|e| refused(format!("cannot read the cgroup of pid {pid}: {e}")))?;
    // The container first (a process of no container has no runtime above it to look for).
    member(pid, container, &cgroup).map_err(refused)?;
    let ns = open_at(&dir, "ns/net").map_err(|e| {
        refused(format!(
            "cannot open the network namespace of pid {pid}: {e}"
        ))
    })?;
    let ino = inode(&ns)?;
    let target = Target {
        pid,
        container,
        cgroup: &cgroup,
        ns: ino,
        engine: 0,
    };
    let engine = engine_namespace(&dir, container)
        .map_err(|e| refused(format!("cannot read the engine's network namespace: {e}")))?;
    let host = File::open("/proc/1/ns/net").and_then(|h| inode(&h)).ok();
    check(&Target { engine, ..target }, host, own).map_err(refused)?;
    Ok(ns)
}

/// The network namespace of the first ancestor of the process in `dir` that is not in container
/// `id`: the container runtime's (its shim's), which lives in the engine's namespace.
fn engine_namespace(dir: &File, id: &str) -> io::Result<u64> {
    let mut status = read_at(dir, "status")?;
    for _ in 0..64 {
        let ppid: u32 = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| io::Error::other("no parent process"))?;
        if ppid == 0 {
            return Err(io::Error::other("no process above the container"));
        }
        let parent = File::open(format!("/proc/{ppid}"))?;
        if !in_container(&read_at(&parent, "cgroup")?, id) {
            return inode(&open_at(&parent, "ns/net")?);
        }
        status = read_at(&parent, "status")?;
    }
    Err(io::Error::other("no process above the container"))
}

/// What the agent knows of a process it is asked to enter.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub pid: u32,
    /// The container it should be in: a full ID, 64 hexadecimal digits.
    pub container: &'a str,
    /// The text of its `/proc/PID/cgroup`.
    pub cgroup: &'a str,
    /// Its network namespace's inode.
    pub ns: u64,
    /// The engine's network namespace: its container runtime's.
    pub engine: u64,
}

/// Whether the agent may enter `t`'s network namespace, given the host's (when it can be read) and
/// its own: only a process of the named container, in a namespace of its own. Says why not.
pub fn check(t: &Target, host: Option<u64>, own: u64) -> Result<(), String> {
    let pid = t.pid;
    member(pid, t.container, t.cgroup)?;
    if t.ns == t.engine || Some(t.ns) == host {
        return Err(format!(
            "pid {pid} is in the host's network namespace, not a node's"
        ));
    }
    if t.ns == own {
        return Err(format!("pid {pid} is in the agent's own network namespace"));
    }
    Ok(())
}

/// Whether process `pid`, whose `/proc/PID/cgroup` reads `cgroup`, is in container `container`.
fn member(pid: u32, container: &str, cgroup: &str) -> Result<(), String> {
    if !is_container_id(container) {
        return Err(format!("`{container}` is not a container ID"));
    }
    if !in_container(cgroup, container) {
        return Err(format!("pid {pid} is not in container {container}"));
    }
    Ok(())
}

/// A full container ID: 64 lowercase hexadecimal digits.
pub fn is_container_id(id: &str) -> bool {
    id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether a process whose `/proc/PID/cgroup` reads `cgroup` belongs to container `id`: some
/// hierarchy's path has a component that is the ID (`/docker/<id>`) or a systemd scope of it
/// (`docker-<id>.scope`).
pub fn in_container(cgroup: &str, id: &str) -> bool {
    if !is_container_id(id) {
        return false;
    }
    cgroup
        .lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .flat_map(|path| path.split('/'))
        .any(|part| {
            part == id
                || part
                    .strip_suffix(".scope")
                    .and_then(|s| s.rsplit_once('-'))
                    .is_some_and(|(_, s)| s == id)
        })
}

/// The first process (lowest PID) of container `id` in a network namespace of its own, found through
/// `/proc` (the agent shares the host's PIDs): what the agent enters when it restores a node it has
/// no PID for. `None`: the container runs no process.
pub fn find(id: &str) -> io::Result<Option<u32>> {
    if !is_container_id(id) {
        return Ok(None);
    }
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    Ok(pids.into_iter().find(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| in_container(&c, id))
    }))
}

/// Opens `path` under the directory `dir` (a `/proc/PID` directory).
fn open_at(dir: &File, path: &str) -> io::Result<File> {
    let path = std::ffi::CString::new(path).map_err(io::Error::other)?;
    // SAFETY: openat with a valid directory descriptor and a NUL-terminated path; the descriptor
    // returned is owned by the File.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            path.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Reads the text of `path` under the directory `dir`.
fn read_at(dir: &File, path: &str) -> io::Result<String> {
    let mut text = String::new();
    open_at(dir, path)?.read_to_string(&mut text)?;
    Ok(text)
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
    // Input and error output on threads of their own, so that a program that hangs can be stopped.
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = std::time::Instant::now() + RUN_DEADLINE;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(2))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{program} did not finish within {RUN_DEADLINE:?}: stopped"
                ));
            }
            Err(e) => return Err(format!("cannot wait for {program}: {e}")),
        }
    };
    // A program that exits early closes its input: its stderr says why, not the broken pipe.
    let written = writer.join().unwrap_or(Ok(()));
    let stderr = reader.join().unwrap_or_default();
    if status.success() {
        written.map_err(|e| format!("cannot write to {program}: {e}"))
    } else {
        Err(format!("{program} failed ({status}): {}", stderr.trim()))
    }
}

/// The longest a program run in a namespace (`iptables-restore`) may take before it is stopped.
pub const RUN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

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

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "5b84dbdc71457a26e385640323d1209626b8f2ade7906d2d49df6ae05d44f58b";
    const OTHER: &str = "0b84dbdc71457a26e385640323d1209626b8f2ade7906d2d49df6ae05d44f58b";

    fn target<'a>(container: &'a str, cgroup: &'a str, ns: u64) -> Target<'a> {
        Target {
            pid: 42,
            container,
            cgroup,
            ns,
            engine: ENGINE,
        }
    }

    const ENGINE: u64 = 4026531833;

    #[test]
    fn a_process_is_in_a_container_only_when_its_cgroup_names_the_whole_id() {
        let v1 = format!("12:pids:/docker/{ID}\n0::/docker/{ID}\n");
        let v2 = format!("0::/system.slice/docker-{ID}.scope\n");
        let nested = format!("0::/../../docker/{ID}/init\n");
        for text in [&v1, &v2, &nested] {
            assert!(in_container(text, ID), "{text}");
            assert!(!in_container(text, OTHER), "{text}");
        }
        // A prefix of the ID, or the ID inside a longer name, is not the container.
        assert!(!in_container(&v1, &ID[..12]));
        assert!(!in_container(&format!("0::/docker/{ID}x\n"), ID));
        assert!(!in_container(&format!("0::/x{ID}\n"), ID));
        // The host's processes: no container at all.
        assert!(!in_container("0::/\n1:cpu:/\n", ID));
        // An empty or malformed ID matches nothing, even an empty path component.
        assert!(!in_container("0::/docker//x\n", ""));
        assert!(!in_container(&v1.to_uppercase(), &ID.to_uppercase()));
    }

    #[test]
    fn only_a_process_of_the_named_container_in_a_namespace_of_its_own_is_entered() {
        let cgroup = format!("0::/docker/{ID}\n");
        let (host, own, node) = (Some(4026531840), 4026532000, 4026532500);
        assert_eq!(check(&target(ID, &cgroup, node), host, own), Ok(()));
        // The host's namespace unreadable: the engine's is still checked.
        assert_eq!(check(&target(ID, &cgroup, node), None, own), Ok(()));
        // Another container's process (a reused PID, or a PID that was never the node's).
        let e = check(&target(OTHER, &cgroup, node), host, own).unwrap_err();
        assert_eq!(e, format!("pid 42 is not in container {OTHER}"));
        // A process of the container in the engine's namespace (`--network host`), the host's, or
        // the agent's own.
        for ns in [ENGINE, host.unwrap()] {
            let e = check(&target(ID, &cgroup, ns), host, own).unwrap_err();
            assert!(e.contains("host's network namespace"), "{e}");
        }
        let e = check(&target(ID, &cgroup, ENGINE), None, own).unwrap_err();
        assert!(e.contains("host's network namespace"), "{e}");
        let e = check(&target(ID, &cgroup, own), host, own).unwrap_err();
        assert!(e.contains("agent's own"), "{e}");
        // A name or a short ID is refused: only a full ID identifies a container.
        for bad in ["regbox-c-n0", &ID[..12], ""] {
            let e = check(&target(bad, &cgroup, node), host, own).unwrap_err();
            assert!(e.contains("not a container ID"), "{e}");
        }
    }

    #[test]
    fn a_process_outside_any_container_is_refused_by_open_node() {
        // This test's own process is in no container of that ID: refused whatever else holds (and
        // refused, not let through, where /proc/1/ns/net cannot be read).
        let e = open_node(std::process::id(), ID).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        let e = open_node(0, ID).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
    }
}
