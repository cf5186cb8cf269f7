//! Bounded data directories, made inside the regbox image by a privileged throw-away container: a
//! sparse file of the declared size on a volume, attached to a loop device and formatted ext4 with the
//! node's user owning its root (`prepare`), and the loop device let go once the node's volume is gone
//! (`release`). Docker then mounts the device as the node's data volume.

use std::path::Path;
use std::process::Command;

/// Makes `file` (sparse, `size` bytes), attaches it to a free loop device, formats it ext4 with no
/// blocks reserved and `owner` (`uid:gid`) owning its root, and returns the device (`/dev/loopN`).
pub fn prepare(file: &Path, size: u64, owner: &str) -> Result<String, String> {
    let f = std::fs::File::create(file).map_err(|e| format!("create {}: {e}", file.display()))?;
    f.set_len(size)
        .map_err(|e| format!("size {} to {size} bytes: {e}", file.display()))?;
    drop(f);
    let device = run("losetup", &["--find", "--show", &file.to_string_lossy()])?;
    let device = device.trim().to_string();
    if !device.starts_with("/dev/loop") {
        return Err(format!("losetup answered `{device}`, not a loop device"));
    }
    let root_owner = format!("root_owner={owner}");
    let formatted = run(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-m",
            "0",
            "-E",
            &root_owner,
            &device,
        ],
    );
    if let Err(e) = formatted {
        let _ = release(&device);
        return Err(e);
    }
    Ok(device)
}

/// Detaches loop device `device` (one already gone is not an error).
pub fn release(device: &str) -> Result<(), String> {
    if !device.starts_with("/dev/loop") || device.contains("..") {
        return Err(format!("`{device}` is not a loop device"));
    }
    match run("losetup", &["--detach", device]) {
        Ok(_) => Ok(()),
        Err(e) if e.contains("No such device") || e.contains("No such file") => Ok(()),
        Err(e) => Err(e),
    }
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("run {program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
