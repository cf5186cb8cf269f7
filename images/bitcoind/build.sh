#!/usr/bin/env bash
# Owns the contents of regbox's images, each emitted as a minimal rootfs.tar for `docker import`: the node image (bitcoind + bitcoin-cli and exactly the shared libraries they load, from Debian sid — private apt config, host apt/dpkg state untouched — or from a release tarball, a directory or a self-built binary) and the regbox image (a regbox binary with Debian's iptables, for the fault agent).
#
# Usage: build.sh OUTDIR
#        build.sh --from PATH OUTDIR
#        build.sh --regbox BINARY OUTDIR
#
# With --regbox: the image holds BINARY as /usr/bin/regbox, iptables (its nftables backend,
# xtables-nft-multi, with every extension module) from Debian sid's iptables package, and losetup and
# mke2fs (for bounded data directories) from its mount and e2fsprogs packages, each with the
# libraries it loads from that package's dependency closure. Writes OUTDIR/rootfs.tar, OUTDIR/version
# (iptables' version) and OUTDIR/package.
#
# PATH (with --from) is one of:
#   - a tarball (.tar, .tar.gz, .tar.xz, .tar.bz2) or a directory in the layout of Bitcoin Core's
#     release tarballs: bitcoin-X/bin/bitcoind, bitcoin-X/bin/bitcoin-cli (optional), and any shared
#     libraries the binaries need that the host lacks in a lib directory of the tree;
#   - a self-built bitcoind binary.
# Nothing taken from PATH is ever run on this host. Its ELF files are read, not executed: the
# interpreter (PT_INTERP) and the needed libraries (DT_NEEDED) come from their headers, and each needed
# library is looked for by name in the tree's directories holding .so files first (with the tree's
# loader when it ships one), then the host's. An interpreter that is relative or has an empty, `.` or
# `..` component, a library name that is not a plain file name, a file of the tree that links outside
# it and a write that would land outside the image tree are refused. The binaries are then run (for
# their version, which also proves they load) only inside a throw-away container of an image imported
# from the assembled tree: no network, no capabilities, no privilege gain, read-only, bitcoind's
# unprivileged user, limited memory and processes; the container and the image carry the label
# regbox.probe (and regbox.from, the name of PATH) and are removed afterwards.
#
# Writes:
#   OUTDIR/rootfs.tar    minimal root filesystem (paths relative to /, numeric owner root)
#   OUTDIR/version       bitcoind version, short form (e.g. 29.4)
#   OUTDIR/full_version  bitcoind version as it reports it, without the v (e.g. 29.4.3.knots20260508)
#   OUTDIR/flavour       whose bitcoind: core, knots, or bitcoind when it does not say
#   OUTDIR/package       Debian package the binaries came from (e.g. bitcoin-knots), or "local"
#
# Exit status: 0 when the image tree was written; 2 when what --from supplied is refused (it is not
# what the build can use, it is crafted to lead out of the tree, its binaries do not run or answer in
# their throw-away container: what was expected is said); 1 when the build itself failed (a missing
# tool, the mirror, Docker), and for anything wrong with what Debian's archive carries; 2 for a wrong
# command line too. Interrupted (TERM, INT, HUP), it removes what it made (the throw-away container and
# image, its working directory) and exits 128 + the signal.
#
# Environment:
#   REGBOX_DEBIAN_MIRROR  Debian mirror (default http://deb.debian.org/debian)
#   REGBOX_PACKAGE        package providing bitcoind/bitcoin-cli (default bitcoin-knots)
#   REGBOX_DEBIAN_KEYRING keyring verifying the mirror's InRelease
#                         (default /usr/share/keyrings/debian-archive-keyring.gpg)
#
# Needs apt-get (Debian source only), dpkg-deb (Debian source only), the docker command and a Docker
# engine (--from only) and GNU tar on the host; runs as root or as an ordinary user. Only amd64
# (x86_64) is supported.
set -euo pipefail

readonly PROG=${0##*/}
readonly MIRROR=${REGBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
readonly SUITE=sid
PACKAGE=${REGBOX_PACKAGE:-bitcoin-knots}
KEYRING=${REGBOX_DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
readonly ARCH=amd64
readonly TRIPLET=x86_64-linux-gnu
readonly LOADER_NAME=ld-linux-x86-64.so.2
readonly HOST_LIBDIRS=(/lib/$TRIPLET /usr/lib/$TRIPLET /lib64 /usr/lib64 /lib /usr/lib)

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
# Refuses what --from supplied: exit status 2 (refused input). What Debian's archive carries is not the
# user's input: without --from a refusal is a failure like any other (1).
refuse() { printf '%s: error: %s\n' "$PROG" "$*" >&2; [[ -z $FROM ]] || exit 2; exit 1; }
usage() { printf 'usage: %s OUTDIR\n       %s --from PATH OUTDIR\n       %s --regbox BINARY OUTDIR\n' "$PROG" "$PROG" "$PROG" >&2; exit 2; }
is_elf() { [[ $(head -c 4 "$1" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]]; }

FROM=
REGBOX=
case ${1:-} in
--from)
    [[ $# -eq 3 && -n $2 ]] || usage
    FROM=$2
    shift 2 ;;
--regbox)
    [[ $# -eq 3 && -n $2 ]] || usage
    REGBOX=$(readlink -f "$2") && [[ -f $REGBOX ]] || { printf '%s: error: %s names no file\n' "${0##*/}" "$2" >&2; exit 1; }
    PACKAGE=iptables
    shift 2 ;;
esac
[[ $# -eq 1 && -n $1 ]] || usage
OUTDIR=$1

tools=(tar find sort mktemp od realpath)
[[ -n $FROM ]] || tools+=(apt-get dpkg-deb)
[[ -z $FROM ]] || tools+=(docker timeout)
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || die "required tool '$tool' not found (needs a Debian/Ubuntu host)"
done
case $(uname -m) in
    x86_64) ;;
    *) die "unsupported host architecture $(uname -m): only x86_64 (amd64) is supported" ;;
esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/regbox-bitcoind.XXXXXXXX")
# Physical (TMPDIR may lead through a link): the checks below compare paths `readlink -f` resolved
# (the --from tree's, the unpacked packages') with paths under it.
WORK=$(cd "$WORK" && pwd -P)
OUTPUTS=(rootfs.tar version full_version flavour package clock init)
[[ -n $REGBOX ]] && OUTPUTS=(rootfs.tar version package)
PROBE_IMAGE= # with --from: the throw-away image the binaries are run in, and its container
PROBE_NAME=
PROBE_ID=    # the value of their regbox.probe label, this build's own; set once they may exist
cleanup() {
    [[ -z $PROBE_NAME ]] || docker rm -f "$PROBE_NAME" >/dev/null 2>&1 || true
    [[ -z $PROBE_IMAGE ]] || docker rmi -f "$PROBE_IMAGE" >/dev/null 2>&1 || true
    if [[ -n $PROBE_ID ]]; then # also what an interrupted docker command made but did not name
        docker ps -aq --filter "label=regbox.probe=$PROBE_ID" 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1 || true
        docker images -q --filter "label=regbox.probe=$PROBE_ID" 2>/dev/null | xargs -r docker rmi -f >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
    for f in "${OUTPUTS[@]}"; do rm -f "$OUTDIR/$f.tmp"; done
}
trap cleanup EXIT
# A signal ends the build through the exit trap. (While the binaries are checked the script waits in
# `wait`, which a trapped signal interrupts at once; a foreground command would be waited for first.)
# Whoever read the error output may be gone (regbox stops a cancelled build this way): a write to it
# must not kill the script before its cleanup.
trap 'exec 2>/dev/null; exit 129' HUP
trap 'exec 2>/dev/null; exit 130' INT
trap 'exec 2>/dev/null; exit 143' TERM
# A write to that output after its reader left (before the TERM arrives) fails rather than kill the
# shell with SIGPIPE: the build then ends through its exit trap as any failure does, not from a signal
# handler (whether a shell runs its exit trap on a fatal signal depends on the shell and its version).
trap '' PIPE
# When run as root apt downloads as the unprivileged _apt user, which must be able
# to traverse into the private cache/lists directories.
chmod 0755 "$WORK"

# What a source provides for the assembly below:
BIN_DIR=        # directory holding bitcoind (and bitcoin-cli, required from Debian)
LOADER=         # the dynamic loader that resolves and runs the binaries
LIBPATH=        # where it looks for libraries, before its defaults
WITHIN=         # when set, every library must resolve under this directory
TREE=           # with --from: the tree the binaries must resolve into
TREE_LIBDIRS=() # with --from: the tree's directories holding shared libraries
LIBDIRS=()      # with --from: where needed libraries are looked for by name, in order
SOURCE=         # the Debian package, or "local"
WHERE=          # where libraries are looked for, as messages say it
HINT=           # what to do about a missing library, when the user can do something
SOURCE_VERSION= # the package's version, when there is one
MAX_ROOTFS_BYTES=$((40 * 1000 * 1000))
# libfaketime, preloaded into bitcoind so that regbox can set a node's clock at run time: from Debian sid
# with the package, from the host (Debian's libfaketime package, or REGBOX_FAKETIME) with --from; an
# image without it has no clock faults (OUTDIR/clock says which).
readonly FAKETIME_PACKAGE=libfaketime
# With --regbox, for bounded data directories (a node's `disk:`): losetup (from mount) and mke2fs
# (from e2fsprogs), run by regbox in a privileged throw-away container.
readonly DISK_PACKAGES=(mount e2fsprogs)
readonly FAKETIME_IN_IMAGE=/usr/lib/regbox/libfaketime.so.1
FAKETIME=
# The node's first process (a static binary regbox carries: images/init/init.rs), which restarts
# bitcoind in place for `reset` and snapshots; REGBOX_INIT names it. An image without it is reset by
# making its nodes' containers again (OUTDIR/init says which).
readonly INIT_IN_IMAGE=/usr/lib/regbox/init
INIT=${REGBOX_INIT:-}
[[ -z $INIT || -n $REGBOX ]] || [[ -f $INIT ]] || die "REGBOX_INIT names no file: $INIT"
[[ -n $REGBOX ]] && MAX_ROOTFS_BYTES=$((1000 * 1000 * 1000)) # a debug build of regbox is large

# ---------------------------------------------------------------------------
# Source 1: Debian sid. A private apt configuration: APT_CONFIG is read before
# anything else, and it redirects every directory apt would read or write
# (including the host's apt.conf.d hooks, sources, preferences and keyrings)
# into $WORK. The dpkg status file is empty, so apt resolves the full
# dependency closure (libc too). Signatures are verified, but Valid-Until/Date
# are not: frozen snapshot mirrors and skewed clocks must still work for a
# local regtest tool.
# ---------------------------------------------------------------------------
from_debian() {
    [[ -r $KEYRING ]] || die "Debian archive keyring $KEYRING not readable (install debian-archive-keyring or set REGBOX_DEBIAN_KEYRING)"
    case $KEYRING in /*) ;; *) KEYRING=$PWD/$KEYRING ;; esac
    local A=$WORK/apt
    mkdir -p "$A"/etc/apt.conf.d "$A"/etc/sources.list.d "$A"/etc/preferences.d \
        "$A"/etc/trusted.gpg.d "$A"/lists/partial "$A"/cache/archives/partial \
        "$A"/state "$A"/log
    : >"$A/state/status"
    printf 'deb [arch=%s signed-by=%s] %s %s main\n' "$ARCH" "$KEYRING" "$MIRROR" "$SUITE" \
        >"$A/etc/sources.list"
    cat >"$A/apt.conf" <<EOF
Dir::Etc "$A/etc";
Dir::Etc::main "/dev/null";
Dir::Etc::parts "apt.conf.d";
Dir::Etc::sourcelist "sources.list";
Dir::Etc::sourceparts "sources.list.d";
Dir::Etc::preferences "preferences";
Dir::Etc::preferencesparts "preferences.d";
Dir::Etc::trusted "trusted.gpg";
Dir::Etc::trustedparts "trusted.gpg.d";
Dir::State "$A/state";
Dir::State::lists "$A/lists";
Dir::State::status "$A/state/status";
Dir::Cache "$A/cache";
Dir::Log "$A/log";
APT::Architecture "$ARCH";
APT::Architectures { "$ARCH"; };
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT::Get::Assume-Yes "true";
Debug::NoLocking "true";
Acquire::Languages "none";
Acquire::Check-Valid-Until "false";
Acquire::Check-Date "false";
Acquire::Retries "1";
Acquire::http::Timeout "30";
EOF
    export APT_CONFIG=$A/apt.conf
    export DEBIAN_FRONTEND=noninteractive LC_ALL=C

    local apt_log=$WORK/apt.log
    run_apt() { # run apt-get quietly; on failure show its last lines
        if ! apt-get -q "$@" >"$apt_log" 2>&1; then
            tail -n 15 "$apt_log" | sed 's/^/  apt: /' >&2
            return 1
        fi
    }

    # A mirror that does not answer for a moment (a name that does not resolve, a dropped connection)
    # is asked again, after 2, 4 and 8 s; one that stays away fails the build.
    retry_apt() {
        local attempt
        for attempt in 1 2 3; do
            run_apt "$@" && return 0
            log "apt failed (attempt $attempt of 4); asking the mirror again in $((2 ** attempt)) s"
            sleep $((2 ** attempt))
        done
        run_apt "$@"
    }

    log "fetching $SUITE package index from $MIRROR ..."
    retry_apt -o APT::Update::Error-Mode=any update \
        || die "cannot fetch the $SUITE index from $MIRROR (mirror unreachable, or InRelease not verifiable with $KEYRING)"
    compgen -G "$A/lists/*_Packages*" >/dev/null \
        || die "no Packages index was downloaded from $MIRROR for $SUITE"

    local wanted=("$PACKAGE")
    if [[ -n $REGBOX ]]; then
        wanted+=("${DISK_PACKAGES[@]}")
    else
        wanted+=("$FAKETIME_PACKAGE")
    fi
    log "downloading ${wanted[*]} and the dependency closure ..."
    retry_apt install --download-only "${wanted[@]}" \
        || die "cannot download ${wanted[*]} and their dependencies from $MIRROR $SUITE"
    local debs=("$A"/cache/archives/*.deb)
    [[ -e ${debs[0]} ]] || die "apt downloaded no packages for $PACKAGE"
    local pkg_deb
    pkg_deb=$(compgen -G "$A/cache/archives/${PACKAGE}_*.deb" | head -n 1) \
        || die "package $PACKAGE itself was not downloaded"
    SOURCE=$PACKAGE
    WHERE="the packages $PACKAGE depends on"
    SOURCE_VERSION=$(dpkg-deb -f "$pkg_deb" Version)
    log "got ${#debs[@]} packages ($(du -sh "$A/cache/archives" | cut -f1)), $PACKAGE $SOURCE_VERSION"

    log "unpacking ..."
    local stage=$WORK/stage deb cand
    mkdir -p "$stage"
    for deb in "${debs[@]}"; do
        dpkg-deb -x "$deb" "$stage" || die "cannot unpack $(basename "$deb")"
    done
    for cand in "$stage/usr/lib/$TRIPLET/$LOADER_NAME" "$stage/lib/$TRIPLET/$LOADER_NAME" \
        "$stage/usr/lib64/$LOADER_NAME" "$stage/lib64/$LOADER_NAME"; do
        if [[ -e $cand ]]; then LOADER=$(readlink -f "$cand"); break; fi
    done
    [[ -n $LOADER && -f $LOADER && $LOADER == "$stage"/* ]] \
        || die "dynamic loader $LOADER_NAME not found in the unpacked packages"
    BIN_DIR=$stage/usr/bin
    LIBPATH=$stage/usr/lib/$TRIPLET:$stage/lib/$TRIPLET:$stage/usr/lib:$stage/lib
    WITHIN=$stage
    [[ -n $REGBOX ]] || FAKETIME=$stage/usr/lib/$TRIPLET/faketime/libfaketime.so.1
}

# ---------------------------------------------------------------------------
# Source 2: what the user has (--from): a release-layout tarball or directory,
# or one self-built binary. The tree's own libraries and loader come first,
# then the host's.
# ---------------------------------------------------------------------------
from_local() {
    local src=$1 tree=$WORK/from
    [[ -e $src ]] || refuse "$src does not exist"
    mkdir -p "$tree"
    if [[ -d $src ]]; then
        tree=$(cd "$src" && pwd -P)
    elif is_elf "$src"; then
        mkdir -p "$tree/bin"
        install -p -m 0755 "$src" "$tree/bin/bitcoind"
    else
        log "unpacking $src ..."
        tar -xf "$src" -C "$tree" 2>"$WORK/tar.log" \
            || refuse "$src is neither a directory, an ELF binary nor a tarball tar can read: $(head -n 2 "$WORK/tar.log")"
    fi
    local found=()
    mapfile -t found < <(find "$tree" -name bitcoind \( -type f -o -type l \) | LC_ALL=C sort)
    ((${#found[@]} > 0)) || refuse "no bitcoind in $src (expected bitcoin-X/bin/bitcoind, as in a release tarball)"
    if ((${#found[@]} > 1)); then   # several: the one in a bin/ directory, as a release has it
        local in_bin=() f
        for f in "${found[@]}"; do [[ $f == */bin/bitcoind ]] && in_bin+=("$f"); done
        ((${#in_bin[@]} == 1)) || refuse "several bitcoind in $src: ${found[*]#"$tree"/}"
        found=("${in_bin[@]}")
    fi
    # The binaries' siblings are looked for beside bin/bitcoind, whatever it links to; what it links
    # to must stay inside the tree.
    TREE=$tree
    BIN_DIR=$(dirname "${found[0]}")
    local real
    real=$(resolved "${found[0]}")
    is_elf "$real" && [[ $(od -An -tx1 -j 18 -N 2 "$real" | tr -d ' \n') == 3e00 ]] \
        || refuse "${found[0]#"$tree"/} is not an x86-64 ELF binary"
    local libdirs=() dir ours
    mapfile -t libdirs < <(find "$tree" \( -name '*.so' -o -name '*.so.*' \) -printf '%h\n' | LC_ALL=C sort -u)
    for dir in "${libdirs[@]}"; do
        [[ -d $dir ]] && TREE_LIBDIRS+=("$dir")
    done
    for dir in "${HOST_LIBDIRS[@]}"; do
        [[ -d $dir ]] && LIBDIRS+=("$dir")
    done
    LIBDIRS=("${TREE_LIBDIRS[@]}" "${LIBDIRS[@]}")
    ours=$(find "$tree" -name "$LOADER_NAME" \( -type f -o -type l \) | LC_ALL=C sort | head -n 1)
    if [[ -n $ours ]]; then
        # The tree's loader is only copied into the image (never run here), and only from the tree.
        LOADER=$(resolved "$ours")
        elf_header "$LOADER" "${ours#"$tree"/}"
        log "using the loader and libraries $src ships, then the host's"
    else
        LOADER=$(readlink -f "/lib64/$LOADER_NAME" || true)
        [[ -n $LOADER && -f $LOADER ]] || die "the host has no /lib64/$LOADER_NAME and $src ships none"
    fi
    FAKETIME=${REGBOX_FAKETIME:-/usr/lib/$TRIPLET/faketime/libfaketime.so.1}
    if [[ ! -f $FAKETIME ]]; then
        log "warning: no libfaketime on this host ($FAKETIME): the image will have no clock faults (install Debian's libfaketime, or set REGBOX_FAKETIME)"
        FAKETIME=
    fi
    SOURCE=local
    WHERE="$src or on this host"
    HINT=" (ship it in a lib directory of the tree)"
    MAX_ROOTFS_BYTES=$((1000 * 1000 * 1000)) # self-built binaries with debug symbols are large
}

# Dies explaining a loader line "X: LIB: version `V' not found (required by Y)".
too_old() {
    local re=": ([^:]+): version .([^']+)' not found \(required by ([^)]+)\)"
    [[ $1 =~ $re ]] || refuse "$bin: $1"
    refuse "$bin: ${BASH_REMATCH[3]##*/} needs ${BASH_REMATCH[2]}, newer than the ${BASH_REMATCH[1]} found$HINT"
}

# The file `path` names, following links; inside the --from tree when there is one.
resolved() {
    local real
    real=$(readlink -f "$1") && [[ -f $real ]] || refuse "$1 names no file"
    [[ -z $TREE || $real == "$TREE"/* ]] || refuse "$1 links outside the tree it came in ($real)"
    printf '%s\n' "$real"
}

# ---------------------------------------------------------------------------
# Reading ELF files without running them (with od only): what --from supplies
# is never executed on this host. Every number read is bounded by the file's
# size before it is used; every path read is checked before it names a file.
# ---------------------------------------------------------------------------
# A decimal that bash's arithmetic holds exactly (numbers in a crafted file may be up to 2^64-1).
small() { [[ $1 =~ ^[0-9]{1,15}$ ]]; }
# The unsigned little-endian integer of SIZE bytes at OFFSET of FILE, in decimal.
elf_num() { od -An -v -tu"$3" -j "$2" -N "$3" "$1" | tr -d ' \n'; }

# Dies unless FILE is a 64-bit little-endian x86-64 ELF file; NAME is how messages call it.
elf_header() {
    local ident
    ident=$(od -An -v -tx1 -N 20 "$1" | tr -d ' \n')
    [[ ${ident:0:12} == 7f454c460201 && ${ident:36:4} == 3e00 ]] \
        || refuse "$2 is not an x86-64 ELF file (64-bit, little-endian)"
}

# Sets ELF_STR to the NUL-terminated string at OFFSET of FILE, read within LIMIT bytes; dies naming
# NAME and WHAT when there is no NUL within them. A string holding anything but letters, digits and
# ._+-/ is refused where it is checked (check_interp, check_soname), shown with its escapes.
elf_string() {
    local f=$1 off=$2 limit=$3 name=$4 what=$5 hex
    hex=$(od -An -v -tx1 -j "$off" -N "$limit" "$f" | tr -s ' \n' '  ')
    hex=" ${hex# }"
    [[ $hex == *' 00'* ]] || refuse "$name: its $what is not a terminated string"
    hex=${hex%% 00*}
    ELF_STR=$(LC_ALL=C printf %b "${hex// /\\x}x")
    ELF_STR=${ELF_STR%x} # (the x keeps trailing newlines, which a path must not have)
}

# Reads FILE's program headers: ELF_INTERP (PT_INTERP, empty for a static binary), ELF_DYN (offset and
# size of PT_DYNAMIC, empty when there is none) and ELF_LOADS (vaddr, offset, size of each PT_LOAD).
elf_program() {
    local f=$1 name=$2 size phoff phnum i t w=() v=()
    size=$(stat -c %s "$f")
    phoff=$(elf_num "$f" 32 8)
    phnum=$(elf_num "$f" 56 2)
    small "$phoff" && small "$phnum" && (($(elf_num "$f" 54 2) == 56 && phoff + phnum * 56 <= size)) \
        || refuse "$name: malformed ELF program headers"
    ELF_INTERP='' ELF_DYN=() ELF_LOADS=()
    ((phnum > 0)) || return 0
    read -r -d '' -a w < <(od -An -v -tu4 -j "$phoff" -N $((phnum * 56)) "$f") || true
    read -r -d '' -a v < <(od -An -v -tu8 -j "$phoff" -N $((phnum * 56)) "$f") || true
    for ((i = 0; i < phnum; i++)); do
        t=${w[i * 14]}
        local off=${v[i * 7 + 1]} vaddr=${v[i * 7 + 2]} fsz=${v[i * 7 + 4]}
        case $t in 1 | 2 | 3) ;; *) continue ;; esac
        small "$off" && small "$vaddr" && small "$fsz" && ((off + fsz <= size)) \
            || refuse "$name: malformed ELF program header $i"
        case $t in
        1) ELF_LOADS+=("$vaddr" "$off" "$fsz") ;;
        2) ELF_DYN=("$off" "$fsz") ;;
        3)
            ((fsz > 1 && fsz <= 4096)) || refuse "$name: malformed ELF interpreter (PT_INTERP) of $fsz bytes"
            elf_string "$f" "$off" "$fsz" "$name" "ELF interpreter (PT_INTERP)"
            ELF_INTERP=$ELF_STR
            [[ -n $ELF_INTERP ]] || refuse "$name: its ELF interpreter (PT_INTERP) is empty"
            ;;
        esac
    done
}

# Sets ELF_NEEDED to the libraries FILE names in its dynamic section (DT_NEEDED), each checked to be a
# plain file name. Search paths the file carries (DT_RPATH, DT_RUNPATH) are not used.
elf_needed() {
    local f=$1 name=$2 n i tag val strtab='' strsz='' offs=() d=() j
    ELF_NEEDED=()
    elf_program "$f" "$name"
    ((${#ELF_DYN[@]})) || return 0 # (its bounds are checked against the file's size)
    n=$((ELF_DYN[1] / 16))
    ((n <= 65536)) || refuse "$name: malformed ELF dynamic section"
    read -r -d '' -a d < <(od -An -v -tu8 -j "${ELF_DYN[0]}" -N $((n * 16)) "$f") || true
    for ((i = 0; i < n; i++)); do
        tag=${d[i * 2]} val=${d[i * 2 + 1]}
        case $tag in
        0) break ;;
        1) offs+=("$val") ;;
        5) strtab=$val ;;
        10) strsz=$val ;;
        esac
    done
    ((${#offs[@]})) || return 0
    small "$strtab" && small "$strsz" || refuse "$name: malformed ELF dynamic section (string table)"
    # The string table is named by its address: the PT_LOAD segment holding it gives its file offset.
    local at=
    for ((j = 0; j < ${#ELF_LOADS[@]}; j += 3)); do
        if ((ELF_LOADS[j] <= strtab && strtab + strsz <= ELF_LOADS[j] + ELF_LOADS[j + 2])); then
            at=$((strtab - ELF_LOADS[j] + ELF_LOADS[j + 1]))
            break
        fi
    done
    [[ -n $at ]] || refuse "$name: malformed ELF dynamic section (string table outside the file)"
    for val in "${offs[@]}"; do
        small "$val" && ((val < strsz)) || refuse "$name: malformed ELF dynamic section (library name)"
        local limit=$((strsz - val))
        ((limit <= 256)) || limit=256
        elf_string "$f" $((at + val)) "$limit" "$name" "needed library name (DT_NEEDED)"
        check_soname "$ELF_STR" "$name"
        ELF_NEEDED+=("$ELF_STR")
    done
}

# Dies unless INTERP, the ELF interpreter of NAME, is an absolute path with no empty, `.` or `..`
# component and only letters, digits and ._+-/ in it: the image gets a link at that path.
check_interp() {
    local p=$1 part parts=()
    [[ $p == /* ]] || refuse "$2: its ELF interpreter (PT_INTERP) $(printf %q "$p") is a relative path; refused"
    [[ $p =~ ^[A-Za-z0-9._+/-]+$ ]] \
        || refuse "$2: its ELF interpreter (PT_INTERP) $(printf %q "$p") holds characters other than letters, digits and ._+-/; refused"
    IFS=/ read -r -a parts <<<"${p#/}"
    [[ $p != */ ]] || parts+=("")
    for part in "${parts[@]}"; do
        case $part in
        '' | . | ..) refuse "$2: its ELF interpreter (PT_INTERP) $p has a '$part' component; refused" ;;
        esac
    done
}

# Dies unless SONAME, a library NAME needs, is a plain file name: it is looked for in directories and
# written into the image under that name.
check_soname() {
    [[ $1 =~ ^[A-Za-z0-9._+-]+$ && $1 != . && $1 != .. ]] \
        || refuse "$2: needed library name $(printf %q "$1") is not a plain file name; refused"
}

if [[ -n $FROM ]]; then from_local "$FROM"; else from_debian; fi

# ---------------------------------------------------------------------------
# Assemble the root filesystem: the binaries, exactly the libraries the
# source's loader resolves for them (copied as real files under their soname),
# the loader at the binaries' PT_INTERP, and a few files/dirs a daemon needs.
# ---------------------------------------------------------------------------
log "resolving shared libraries ..."
ROOT=$(cd "$WORK" && pwd -P)/rootfs # physical: the checks below compare resolved paths with it
mkdir -p "$ROOT/usr/bin" "$ROOT/usr/lib/$TRIPLET"
declare -A interps=() static=() placed=()

# Dies unless PATH (absolute, in the image) stays inside the image tree once resolved: no `..`, and
# no link already in the tree that leads out of it or elsewhere in it. NAME is whose file it is.
in_root() {
    local real
    real=$(realpath -m -- "$ROOT$1") || refuse "$2: cannot resolve $1 in the image tree"
    [[ $real == "$ROOT$1" && ($1 == '' || $real == "$ROOT"/*) ]] \
        || refuse "$2: $(printf %q "$1") would be written outside the image tree (it resolves to $real); refused"
}

# Copies SRC to PATH in the image with MODE, once PATH is known to stay inside the image tree.
put() {
    in_root "${2%/*}" "$4"
    mkdir -p "$ROOT${2%/*}"
    in_root "$2" "$4"
    install -m "$3" "$1" "$ROOT$2"
}

# Installs the ELF file SRC at DEST in the root filesystem with every library it loads; NAME is how
# messages call it. A shared object (an iptables extension) is resolved the same way.
install_elf() {
    local src=$1 dest=$2 bin=$3 verify=0 listing line soname path real
    put "$src" "$dest" 0755 "$bin"
    # The loader tells a dynamic executable (0) from a static one (1) or a static PIE (2); only the
    # first has libraries to resolve. Shared objects are not executables: they are resolved as they are.
    if [[ $src != *.so && $src != *.so.* ]]; then
        "$LOADER" --verify "$src" >/dev/null 2>&1 || verify=$?
        case $verify in
            0) ;;
            1 | 2) static[$bin]=1; return ;;
            *) die "$bin is not an executable the loader can run" ;;
        esac
    fi
    if ! listing=$("$LOADER" --inhibit-cache --library-path "$LIBPATH" --list "$src" 2>&1); then
        if [[ $listing == *'error while loading shared libraries: '* ]]; then
            missing=${listing#*error while loading shared libraries: }
            die "$bin needs ${missing%%:*}, not found in $WHERE$HINT"
        fi
        die "cannot resolve the shared libraries of $bin:"$'\n'"$listing"
    fi
    while IFS= read -r line; do
        line=${line#"${line%%[![:space:]]*}"}
        case $line in
        *' => not found'*)
            die "$bin needs ${line%% *}, not found in $WHERE$HINT" ;;
        *"' not found (required by "*)   # a library too old for what needs it
            too_old "$line" ;;
        /*' => '*|/*' (0x'*)         # the PT_INTERP line; of a shared object, the loader listing it
            [[ $src == *.so || $src == *.so.* ]] && continue
            check_interp "${line%% *}" "$bin"
            interps[${line%% *}]=1 ;;
        *' => '*)
            soname=${line%% => *}
            check_soname "$soname" "$bin"
            path=${line#* => }; path=${path% (0x*}
            [[ -z $WITHIN || $path == "$WITHIN"/* ]] \
                || die "$bin: $soname resolved outside the unpacked packages ($path)"
            real=$(readlink -f "$path")
            [[ -f $real ]] || die "$bin: $soname resolves to a missing file ($path)"
            put "$real" "/usr/lib/$TRIPLET/$soname" 0644 "$bin" ;;
        linux-vdso.so.*|'') ;;
        *) die "$bin: unexpected loader output: $line" ;;
        esac
    done <<<"$listing"
}

# With --from: installs the ELF file SRC at DEST with every library it needs, reading its headers
# (never running it); NAME is how messages call it.
install_from() {
    local src=$1 dest=$2 bin=$3
    elf_header "$src" "$bin"
    case $(elf_num "$src" 16 2) in
        2 | 3) ;;
        *) refuse "$bin is not an executable ELF file" ;;
    esac
    put "$src" "$dest" 0755 "$bin"
    elf_needed "$src" "$bin"
    if [[ -n $ELF_INTERP ]]; then
        check_interp "$ELF_INTERP" "$bin"
        interps[$ELF_INTERP]=1
    fi
    need_libs "$bin" "${ELF_NEEDED[@]}"
}

# With --from: puts each library in SONAMES (needed by NAME) into the image, with what it needs in
# turn, each found by name in LIBDIRS and read, never run.
need_libs() {
    local bin=$1 soname
    shift
    for soname in "$@"; do
        [[ -z ${placed[$soname]:-} ]] || continue
        placed[$soname]=1
        [[ $soname != "$LOADER_NAME" ]] || continue # the loader is installed on its own
        find_lib "$soname" || refuse "$bin needs $soname, not found in $WHERE$HINT"
        put "$FOUND" "/usr/lib/$TRIPLET/$soname" 0644 "$bin"
        elf_needed "$FOUND" "$soname"
        need_libs "$soname" "${ELF_NEEDED[@]}"
    done
}

# Sets FOUND to the file SONAME names (links followed) in the first directory of LIBDIRS holding an
# x86-64 ELF file of that name, as the loader picks it. In the tree's directories it must stay inside
# the tree.
find_lib() {
    local dir cand real ident
    for dir in "${LIBDIRS[@]}"; do
        cand=$dir/$1
        [[ -e $cand ]] || continue
        real=$(readlink -f "$cand") && [[ -f $real ]] || continue
        if [[ $dir == "$TREE" || $dir == "$TREE"/* ]]; then
            [[ $real == "$TREE"/* ]] || refuse "${cand#"$TREE"/} links outside the tree it came in ($real)"
        fi
        ident=$(od -An -v -tx1 -N 20 "$real" | tr -d ' \n')
        [[ ${ident:0:12} == 7f454c460201 && ${ident:36:4} == 3e00 ]] || continue # another architecture
        FOUND=$real
        return 0
    done
    return 1
}

if [[ -n $REGBOX ]]; then
    BINARIES=(regbox xtables-nft-multi)
    install_elf "$REGBOX" /usr/bin/regbox regbox
    install_elf "$(resolved "$BIN_DIR/../sbin/xtables-nft-multi")" /usr/sbin/xtables-nft-multi xtables-nft-multi
    # The extensions (targets such as NFQUEUE and REJECT, matches such as tcp) are loaded at run time.
    xt=$WITHIN/usr/lib/$TRIPLET/xtables
    [[ -d $xt ]] || die "$PACKAGE ships no xtables extensions directory"
    for ext in "$xt"/*.so; do
        install_elf "$ext" "/usr/lib/$TRIPLET/xtables/${ext##*/}" "${ext##*/}"
    done
    for name in iptables iptables-restore iptables-save; do
        ln -s xtables-nft-multi "$ROOT/usr/sbin/$name"
    done
    for tool in losetup mke2fs; do
        install_elf "$(resolved "$BIN_DIR/../sbin/$tool")" "/usr/sbin/$tool" "$tool"
    done
else
    BINARIES=(bitcoind)
    [[ -z $FROM || -e $BIN_DIR/bitcoin-cli ]] && BINARIES+=(bitcoin-cli)
    for bin in "${BINARIES[@]}"; do
        [[ -e $BIN_DIR/$bin ]] || refuse "$SOURCE does not ship $bin"
        real=$(resolved "$BIN_DIR/$bin")
        if [[ -n $FROM ]]; then
            install_from "$real" "/usr/bin/$bin" "$bin"
        else
            install_elf "$real" "/usr/bin/$bin" "$bin"
        fi
    done
    if [[ -n $FAKETIME ]]; then
        real=$(readlink -f "$FAKETIME") && [[ -f $real ]] || die "libfaketime $FAKETIME names no file"
        if [[ -n $FROM ]]; then
            install_from "$real" "$FAKETIME_IN_IMAGE" libfaketime
        else
            install_elf "$real" "$FAKETIME_IN_IMAGE" libfaketime
        fi
    fi
fi
put "$LOADER" "/usr/lib/$TRIPLET/$LOADER_NAME" 0755 "$LOADER_NAME"
[[ -z $INIT || -n $REGBOX ]] || put "$INIT" "$INIT_IN_IMAGE" 0755 init

mkdir -p "$ROOT/etc" "$ROOT/tmp" "$ROOT/data" "$ROOT/root" "$ROOT/run"
chmod 1777 "$ROOT/tmp"
chmod 0755 "$ROOT/data"
chmod 0700 "$ROOT/root"
# bitcoind runs as an unprivileged user that owns /data (Docker copies /data's owner into a fresh volume).
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nbitcoin:x:10001:10001:bitcoind:/data:/usr/sbin/nologin\n' >"$ROOT/etc/passwd"
printf 'root:x:0:\nbitcoin:x:10001:\n' >"$ROOT/etc/group"
# Without nsswitch.conf glibc tries DNS before /etc/hosts for host names.
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$ROOT/etc/nsswitch.conf"
chmod 0644 "$ROOT"/etc/*

# The loader at each binary's interpreter path (checked by check_interp): a relative link to it, made
# only where nothing is yet, inside the image tree.
interps[/lib64/$LOADER_NAME]=1
for interp in "${!interps[@]}"; do
    [[ $interp == "/usr/lib/$TRIPLET/$LOADER_NAME" ]] && continue
    in_root "${interp%/*}" "the ELF interpreter $interp"
    mkdir -p "$ROOT${interp%/*}"
    in_root "$interp" "the ELF interpreter $interp"
    [[ ! -e $ROOT$interp && ! -L $ROOT$interp ]] \
        || refuse "the ELF interpreter $interp of ${BINARIES[*]} would replace a file of the image; refused"
    up=${interp%/*}; up=${up//[!\/]/}; up=${up//\//../}   # lexical, not via host fs
    ln -s "${up}usr/lib/$TRIPLET/$LOADER_NAME" "$ROOT$interp"
done

# ---------------------------------------------------------------------------
# Version: run the binaries through the bundled loader (proves they work) and
# take MAJOR.MINOR of what bitcoind reports ("v29.4.3.knots20260508" -> 29.4);
# with --from they run only in a throw-away container of the tree (contained);
# cross-check with the .deb version (29.4-1, 29.4.knots20260508.3-1 -> 29.4).
# The whole version and whose bitcoind it is name images built --from.
# ---------------------------------------------------------------------------
# Writes OUTDIR/rootfs.tar.tmp from ROOT, dated like the file $1 (or SOURCE_DATE_EPOCH); /data is
# owned by the unprivileged user.
write_rootfs() {
    local size mtime top
    size=$(du -sb "$ROOT" | cut -f1)
    ((size <= MAX_ROOTFS_BYTES)) || refuse "root filesystem is $size bytes, above the $MAX_ROOTFS_BYTES limit"
    log "writing $OUTDIR/rootfs.tar ($((size / 1000 / 1000)) MB, $(find "$ROOT" -type f | wc -l) files) ..."
    mkdir -p "$OUTDIR"
    mtime=${SOURCE_DATE_EPOCH:-$(stat -c %Y "$1")}
    mapfile -t top < <(find "$ROOT" -mindepth 1 -maxdepth 1 ! -name data -printf '%P\n' | LC_ALL=C sort)
    tar -C "$ROOT" --sort=name --numeric-owner --owner=0 --group=0 --mtime="@$mtime" \
        -cf "$OUTDIR/rootfs.tar.tmp" "${top[@]}"
    tar -C "$ROOT" --numeric-owner --owner=10001 --group=10001 --mtime="@$mtime" \
        -rf "$OUTDIR/rootfs.tar.tmp" data
}

# With --from: runs BIN -version from the image tree in a throw-away container, never on this host.
# The container (and the image imported from OUTDIR/rootfs.tar.tmp for it, once) is labelled
# regbox.probe and regbox.from, has no network, no capabilities, no privilege gain, a read-only root,
# bitcoind's unprivileged user, bounded memory, processes and time, and is removed (the image by
# cleanup). Its output (bounded) goes to WORK/BIN.version, its errors to WORK/BIN.err; refuses BIN
# (exit status 2) when it does not run or answer there, dies when Docker cannot run it.
contained() {
    local bin=$1 status=0 label=${FROM%"${FROM##*[!/]}"}
    label=${label##*/}
    label=${label//[!A-Za-z0-9._-]/_}
    label=${label:0:100}
    PROBE_ID=${WORK##*.}
    if [[ -z $PROBE_IMAGE ]]; then
        PROBE_IMAGE=$(docker import --change "LABEL regbox.probe=$PROBE_ID" --change "LABEL regbox.from=$label" \
            "$OUTDIR/rootfs.tar.tmp" 2>"$WORK/import.log") \
            || die "cannot import the image tree to check its binaries in a container: $(tail -n 2 "$WORK/import.log")"
    fi
    PROBE_NAME=regbox-probe-$PROBE_ID-$bin
    local started=$SECONDS
    # In the background, waited for with `wait`, so that a signal runs the traps at once. (The group's
    # shell reports a killed docker client into the error file, not on the build's output.)
    { timeout -k 5 60 docker run --rm --name "$PROBE_NAME" --label "regbox.probe=$PROBE_ID" --label "regbox.from=$label" \
        --network none --cap-drop ALL --security-opt no-new-privileges --read-only \
        --user 10001:10001 --memory 512m --pids-limit 64 \
        --entrypoint "/usr/bin/$bin" "$PROBE_IMAGE" -version; } \
        2> >(head -c 65536 >"$WORK/$bin.err") | head -c 65536 >"$WORK/$bin.version" &
    wait "$!" || status=$? # (the pipeline's status: docker's, unless writing its output failed)
    docker rm -f "$PROBE_NAME" >/dev/null 2>&1 || true
    PROBE_NAME=
    wait # for the error stream's writer
    ((status == 0)) && return
    local err
    err=$(head -n 3 "$WORK/$bin.err" | tr -cd '[:print:]\n')
    [[ -n $err ]] || err="it ended with status $status and said nothing on its error output"
    case $status in
        124) refuse "$bin -version did not finish within 60 s (run in a throw-away container)" ;;
        137) ((SECONDS - started < 60)) || refuse "$bin -version did not finish within 60 s (run in a throw-away container)"
            refuse "$bin -version was killed in its throw-away container (above 512 MB of memory?)" ;;
        125) die "cannot run $bin in a throw-away container: $err" ;;
    esac
    local line
    line=$(grep -m 1 "' not found (required by " "$WORK/$bin.err" | tr -cd '[:print:]') && too_old "$line"
    refuse "$bin does not run with the bundled libraries (in a throw-away container): $err"
}

log "checking binaries ..."
run=("$LOADER" --inhibit-cache --library-path "$ROOT/usr/lib/$TRIPLET")
if [[ -n $REGBOX ]]; then
    "${run[@]}" "$ROOT/usr/bin/regbox" --version >"$WORK/regbox.version" 2>&1 \
        || die "regbox does not run with the bundled libraries: $(head -n 3 "$WORK/regbox.version")"
    XTABLES_LIBDIR=$ROOT/usr/lib/$TRIPLET/xtables "${run[@]}" --argv0 iptables-nft \
        "$ROOT/usr/sbin/xtables-nft-multi" -V >"$WORK/iptables.version" 2>&1 \
        || die "iptables does not run with the bundled libraries: $(head -n 3 "$WORK/iptables.version")"
    version=$(sed -nE '1s/^iptables v([0-9.]+).*/\1/p' "$WORK/iptables.version")
    [[ -n $version ]] || die "cannot read the iptables version from: $(head -n 1 "$WORK/iptables.version")"
    log "$(head -n 1 "$WORK/regbox.version"), iptables $version"
    write_rootfs "$REGBOX"
    printf '%s\n' "$version" >"$OUTDIR/version.tmp"
    printf '%s\n' "$SOURCE" >"$OUTDIR/package.tmp"
    for f in "${OUTPUTS[@]}"; do
        mv -f "$OUTDIR/$f.tmp" "$OUTDIR/$f"
    done
    log "done: regbox with $SOURCE $version"
    exit 0
fi
if [[ -n $FROM ]]; then
    write_rootfs "$BIN_DIR/bitcoind"
    for bin in "${BINARIES[@]}"; do
        contained "$bin"
    done
    docker rmi -f "$PROBE_IMAGE" >/dev/null 2>&1 || log "warning: could not remove the check image $PROBE_IMAGE"
    PROBE_IMAGE=
else
    for bin in "${BINARIES[@]}"; do
        [[ -n ${static[$bin]:-} ]] && run=()
        "${run[@]}" "$ROOT/usr/bin/$bin" -version >"$WORK/$bin.version" 2>&1 \
            || die "$bin does not run with the bundled libraries: $(head -n 3 "$WORK/$bin.version")"
    done
fi
# What a binary says is shown and kept: printable characters only.
full_version=$(head -n 1 "$WORK/bitcoind.version" | tr -cd '[:print:]' | cut -c 1-200)
bin_version=$(sed -nE '1s/.* v?([0-9]+\.[0-9]+)[^ ]*$/\1/p' <<<"$full_version")
long_version=$(sed -nE '1s/.* v?([0-9][^ ]*)$/\1/p' <<<"$full_version")
deb_short=$(sed -nE 's/^([0-9]+:)?([0-9]+\.[0-9]+).*/\2/p' <<<"$SOURCE_VERSION")
version=${bin_version:-$deb_short}
[[ -n $version ]] || refuse "cannot determine the bitcoind version (binary says '$full_version', package $SOURCE_VERSION)"
[[ -z $deb_short || $deb_short == "$version" ]] \
    || log "warning: binary version $version differs from package version $SOURCE_VERSION"
case $full_version in
    *Knots*) flavour=knots ;;
    *Core*) flavour=core ;;
    *) flavour=bitcoind ;;
esac
log "$full_version"

[[ -n $FROM ]] || write_rootfs "$BIN_DIR/bitcoind"
printf '%s\n' "$version" >"$OUTDIR/version.tmp"
printf '%s\n' "${long_version:-$version}" >"$OUTDIR/full_version.tmp"
printf '%s\n' "$flavour" >"$OUTDIR/flavour.tmp"
printf '%s\n' "${FAKETIME:+faketime}" >"$OUTDIR/clock.tmp"
printf '%s\n' "${INIT:+init}" >"$OUTDIR/init.tmp"
printf '%s\n' "$SOURCE" >"$OUTDIR/package.tmp"
for f in "${OUTPUTS[@]}"; do
    mv -f "$OUTDIR/$f.tmp" "$OUTDIR/$f"
done
log "done: $SOURCE $version"
