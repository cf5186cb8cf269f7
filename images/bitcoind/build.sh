#!/usr/bin/env bash
# Owns the regbox bitcoind image contents: bitcoind + bitcoin-cli and their library closure from Debian sid, fetched with a private apt config (host apt/dpkg state untouched), emitted as a minimal rootfs.tar for `docker import`.
#
# Usage: build.sh OUTDIR
#
# Writes:
#   OUTDIR/rootfs.tar  minimal root filesystem (paths relative to /, numeric owner root)
#   OUTDIR/version     upstream bitcoind version, short form (e.g. 29.4)
#   OUTDIR/package     Debian package the binaries came from (e.g. bitcoin-knots)
#
# Environment:
#   REGBOX_DEBIAN_MIRROR  Debian mirror (default http://deb.debian.org/debian)
#   REGBOX_PACKAGE        package providing bitcoind/bitcoin-cli (default bitcoin-knots)
#   REGBOX_DEBIAN_KEYRING keyring verifying the mirror's InRelease
#                         (default /usr/share/keyrings/debian-archive-keyring.gpg)
#
# Needs apt-get, dpkg-deb and GNU tar on the host; runs as root or as an ordinary user.
# Only amd64 (x86_64) is supported.
set -euo pipefail

readonly PROG=${0##*/}
readonly MIRROR=${REGBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
readonly SUITE=sid
readonly PACKAGE=${REGBOX_PACKAGE:-bitcoin-knots}
KEYRING=${REGBOX_DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
readonly ARCH=amd64
readonly TRIPLET=x86_64-linux-gnu
readonly LOADER_NAME=ld-linux-x86-64.so.2
readonly BINARIES=(bitcoind bitcoin-cli)
readonly MAX_ROOTFS_BYTES=$((40 * 1000 * 1000))

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

[[ $# -eq 1 && -n $1 ]] || { printf 'usage: %s OUTDIR\n' "$PROG" >&2; exit 2; }
OUTDIR=$1

for tool in apt-get dpkg-deb tar find sort mktemp; do
    command -v "$tool" >/dev/null 2>&1 || die "required tool '$tool' not found (needs a Debian/Ubuntu host)"
done
case $(uname -m) in
    x86_64) ;;
    *) die "unsupported host architecture $(uname -m): only x86_64 (amd64) is supported" ;;
esac
[[ -r $KEYRING ]] || die "Debian archive keyring $KEYRING not readable (install debian-archive-keyring or set REGBOX_DEBIAN_KEYRING)"
case $KEYRING in /*) ;; *) KEYRING=$PWD/$KEYRING ;; esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/regbox-bitcoind.XXXXXXXX")
trap 'rm -rf "$WORK"; rm -f "$OUTDIR"/rootfs.tar.tmp "$OUTDIR"/version.tmp "$OUTDIR"/package.tmp' EXIT
# When run as root apt downloads as the unprivileged _apt user, which must be able
# to traverse into the private cache/lists directories.
chmod 0755 "$WORK"

# ---------------------------------------------------------------------------
# Private apt configuration. APT_CONFIG is read before anything else, and it
# redirects every directory apt would read or write (including the host's
# apt.conf.d hooks, sources, preferences and keyrings) into $WORK. The dpkg
# status file is empty, so apt resolves the full dependency closure (libc too).
# Signatures are verified, but Valid-Until/Date are not: frozen snapshot
# mirrors and skewed clocks must still work for a local regtest tool.
# ---------------------------------------------------------------------------
A=$WORK/apt
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

apt_log=$WORK/apt.log
run_apt() { # run apt-get quietly; on failure show its last lines
    if ! apt-get -q "$@" >"$apt_log" 2>&1; then
        tail -n 15 "$apt_log" | sed 's/^/  apt: /' >&2
        return 1
    fi
}

log "fetching $SUITE package index from $MIRROR ..."
run_apt -o APT::Update::Error-Mode=any update \
    || die "cannot fetch the $SUITE index from $MIRROR (mirror unreachable, or InRelease not verifiable with $KEYRING)"
compgen -G "$A/lists/*_Packages*" >/dev/null \
    || die "no Packages index was downloaded from $MIRROR for $SUITE"

log "downloading $PACKAGE and its dependency closure ..."
run_apt install --download-only "$PACKAGE" \
    || die "cannot download $PACKAGE and its dependencies from $MIRROR $SUITE"
debs=("$A"/cache/archives/*.deb)
[[ -e ${debs[0]} ]] || die "apt downloaded no packages for $PACKAGE"
pkg_deb=$(compgen -G "$A/cache/archives/${PACKAGE}_*.deb" | head -n 1) \
    || die "package $PACKAGE itself was not downloaded"
deb_version=$(dpkg-deb -f "$pkg_deb" Version)
log "got ${#debs[@]} packages ($(du -sh "$A/cache/archives" | cut -f1)), $PACKAGE $deb_version"

log "unpacking ..."
STAGE=$WORK/stage
mkdir -p "$STAGE"
for deb in "${debs[@]}"; do
    dpkg-deb -x "$deb" "$STAGE" || die "cannot unpack $(basename "$deb")"
done

LOADER=
for cand in "$STAGE/usr/lib/$TRIPLET/$LOADER_NAME" "$STAGE/lib/$TRIPLET/$LOADER_NAME" \
    "$STAGE/usr/lib64/$LOADER_NAME" "$STAGE/lib64/$LOADER_NAME"; do
    if [[ -e $cand ]]; then LOADER=$(readlink -f "$cand"); break; fi
done
[[ -n $LOADER && -f $LOADER && $LOADER == "$STAGE"/* ]] \
    || die "dynamic loader $LOADER_NAME not found in the unpacked packages"
LIBPATH=$STAGE/usr/lib/$TRIPLET:$STAGE/lib/$TRIPLET:$STAGE/usr/lib:$STAGE/lib

# ---------------------------------------------------------------------------
# Assemble the root filesystem: the binaries, exactly the libraries the
# bundled loader resolves for them (copied as real files under their soname),
# the loader at the binaries' PT_INTERP, and a few files/dirs a daemon needs.
# ---------------------------------------------------------------------------
log "resolving shared libraries ..."
ROOT=$WORK/rootfs
mkdir -p "$ROOT/usr/bin" "$ROOT/usr/lib/$TRIPLET"
declare -A interps=()
for bin in "${BINARIES[@]}"; do
    src=$STAGE/usr/bin/$bin
    [[ -f $src ]] || die "$PACKAGE does not ship /usr/bin/$bin"
    install -m 0755 "$src" "$ROOT/usr/bin/$bin"
    listing=$("$LOADER" --inhibit-cache --library-path "$LIBPATH" --list "$src" 2>&1) \
        || die "cannot resolve the shared libraries of $bin:"$'\n'"$listing"
    while IFS= read -r line; do
        line=${line#"${line%%[![:space:]]*}"}
        case $line in
        *' => not found'*)
            die "$bin needs ${line%% *}, which no package in the closure provides" ;;
        /*' => '*|/*' (0x'*)
            interps[${line%% *}]=1 ;;   # the PT_INTERP line
        *' => '*)
            soname=${line%% => *}
            path=${line#* => }; path=${path% (0x*}
            [[ $path == "$STAGE"/* ]] \
                || die "$bin: $soname resolved outside the unpacked packages ($path)"
            real=$(readlink -f "$path")
            [[ -f $real ]] || die "$bin: $soname resolves to a missing file ($path)"
            install -m 0644 "$real" "$ROOT/usr/lib/$TRIPLET/$soname" ;;
        linux-vdso.so.*|'') ;;
        *) die "$bin: unexpected loader output: $line" ;;
        esac
    done <<<"$listing"
done
install -m 0755 "$LOADER" "$ROOT/usr/lib/$TRIPLET/$LOADER_NAME"
interps[/lib64/$LOADER_NAME]=1
for interp in "${!interps[@]}"; do
    [[ $interp == "/usr/lib/$TRIPLET/$LOADER_NAME" ]] && continue
    mkdir -p "$ROOT${interp%/*}"
    up=${interp%/*}; up=${up//[!\/]/}; up=${up//\//../}   # lexical, not via host fs
    ln -sfn "${up}usr/lib/$TRIPLET/$LOADER_NAME" "$ROOT$interp"
done

mkdir -p "$ROOT/etc" "$ROOT/tmp" "$ROOT/data" "$ROOT/root"
chmod 1777 "$ROOT/tmp"
chmod 0755 "$ROOT/data"
chmod 0700 "$ROOT/root"
# bitcoind runs as an unprivileged user that owns /data (Docker copies /data's owner into a fresh volume).
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nbitcoin:x:10001:10001:bitcoind:/data:/usr/sbin/nologin\n' >"$ROOT/etc/passwd"
printf 'root:x:0:\nbitcoin:x:10001:\n' >"$ROOT/etc/group"
# Without nsswitch.conf glibc tries DNS before /etc/hosts for host names.
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$ROOT/etc/nsswitch.conf"
chmod 0644 "$ROOT"/etc/*

# ---------------------------------------------------------------------------
# Version: run the binaries through the bundled loader (proves they work) and
# take MAJOR.MINOR of what bitcoind reports ("v29.4.3.knots20260508" -> 29.4);
# cross-check with the .deb version (29.4-1, 29.4.knots20260508.3-1 -> 29.4).
# ---------------------------------------------------------------------------
log "checking binaries ..."
for bin in "${BINARIES[@]}"; do
    "$LOADER" --inhibit-cache --library-path "$ROOT/usr/lib/$TRIPLET" "$ROOT/usr/bin/$bin" -version \
        >"$WORK/$bin.version" 2>&1 \
        || die "$bin does not run with the bundled libraries: $(head -n 3 "$WORK/$bin.version")"
done
full_version=$(head -n 1 "$WORK/bitcoind.version")
bin_version=$(sed -nE '1s/.* v?([0-9]+\.[0-9]+)[^ ]*$/\1/p' "$WORK/bitcoind.version")
deb_short=$(sed -nE 's/^([0-9]+:)?([0-9]+\.[0-9]+).*/\2/p' <<<"$deb_version")
version=${bin_version:-$deb_short}
[[ -n $version ]] || die "cannot determine the bitcoind version (binary says '$full_version', package $deb_version)"
[[ -z $deb_short || $deb_short == "$version" ]] \
    || log "warning: binary version $version differs from package version $deb_version"
log "$full_version"

size=$(du -sb "$ROOT" | cut -f1)
((size <= MAX_ROOTFS_BYTES)) || die "root filesystem is $size bytes, above the $MAX_ROOTFS_BYTES limit"

log "writing $OUTDIR/rootfs.tar ($((size / 1000 / 1000)) MB, $(find "$ROOT" -type f | wc -l) files) ..."
mkdir -p "$OUTDIR"
mtime=${SOURCE_DATE_EPOCH:-$(stat -c %Y "$STAGE/usr/bin/bitcoind")}
mapfile -t top < <(find "$ROOT" -mindepth 1 -maxdepth 1 ! -name data -printf '%P\n' | LC_ALL=C sort)
tar -C "$ROOT" --sort=name --numeric-owner --owner=0 --group=0 --mtime="@$mtime" \
    -cf "$OUTDIR/rootfs.tar.tmp" "${top[@]}"
tar -C "$ROOT" --numeric-owner --owner=10001 --group=10001 --mtime="@$mtime" \
    -rf "$OUTDIR/rootfs.tar.tmp" data
printf '%s\n' "$version" >"$OUTDIR/version.tmp"
printf '%s\n' "$PACKAGE" >"$OUTDIR/package.tmp"
mv -f "$OUTDIR/rootfs.tar.tmp" "$OUTDIR/rootfs.tar"
mv -f "$OUTDIR/version.tmp" "$OUTDIR/version"
mv -f "$OUTDIR/package.tmp" "$OUTDIR/package"
log "done: $PACKAGE $version"
