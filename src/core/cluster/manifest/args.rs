//! The policy on the bitcoind arguments a manifest may carry (`args:` on `defaults` and nodes): one
//! table of option classes — set by regbox, runs a shell command, dials outside the declared topology,
//! names a file (for `-wallet` and `-zmqpub…`, only by the value: a path, an `ipc:` socket), cuts
//! regbox off — each refused or let through with a warning, everything else allowed;
//! and the reading of an argument as bitcoind reads it (`--x`, `-nox`, `-regtest.x`, `-x=…`), so that
//! no spelling slips past the table.

use super::RESERVED_OPTIONS;

/// What becomes of an argument whose option is in a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The manifest is refused (exit 2, nothing created).
    Refuse,
    /// The manifest is taken, and a warning says what the option may break.
    Warn,
}

/// One row of the policy: options that share a rule and a reason.
#[derive(Debug, PartialEq, Eq)]
pub struct Class {
    /// A short name for the class, as the README's table says it.
    pub name: &'static str,
    pub rule: Rule,
    /// Option names as bitcoind knows them, lower case, without dashes; `*notify` matches every name
    /// ending in `notify`, `zmqpub*` every name starting with `zmqpub`.
    pub options: &'static [&'static str],
    /// Which values put an argument of these options in the class (an argument whose value does not
    /// is judged by the rows below).
    pub values: Values,
    /// Whether a plain negation (`-noproxy`, which only turns the option off) is allowed.
    pub negation_allowed: bool,
    /// Why, worded to follow "argument `-x` is refused: it …" (or "…, allowed, but it …").
    pub why: &'static str,
}

/// Which values of a class's options put an argument in the class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    /// Any value, or none.
    Any,
    /// A value containing this text (`-wallet=/x`: a wallet named by a path, not by a name).
    Containing(&'static str),
    /// A value starting with this text, in any case (`-zmqpubrawblock=ipc://…`: a socket file).
    StartingWith(&'static str),
}

impl Values {
    fn admit(self, value: Option<&str>) -> bool {
        match self {
            Values::Any => true,
            Values::Containing(part) => value.is_some_and(|v| v.contains(part)),
            Values::StartingWith(head) => value.is_some_and(|v| {
                v.get(..head.len())
                    .is_some_and(|h| h.eq_ignore_ascii_case(head))
            }),
        }
    }
}

/// The first class, whose refusal keeps its own wording.
const SET_BY_REGBOX: &str = "set by regbox";

/// The policy, first match wins. An argument in no row is allowed: `-debug=…`, `-dbcache`,
/// `-maxmempool`, `-rest` and `-zmqpub…=tcp://…` (which listen inside the node's own container),
/// `-wallet=NAME`, `-whitelist`, `-txindex`, ….
pub const POLICY: &[Class] = &[
    Class {
        name: SET_BY_REGBOX,
        rule: Rule::Refuse,
        options: RESERVED_OPTIONS,
        values: Values::Any,
        negation_allowed: false,
        why: "is set by regbox and may not be overridden",
    },
    Class {
        name: "runs a shell command",
        rule: Rule::Refuse,
        options: &[
            "blocknotify",
            "walletnotify",
            "alertnotify",
            "startupnotify",
            "shutdownnotify",
            "*notify",
            "signer",
        ],
        values: Values::Any,
        negation_allowed: true,
        why: "runs a shell command inside the node, and a manifest is data: it declares nodes, it does not run commands in them",
    },
    Class {
        name: "dials outside the declared topology",
        rule: Rule::Refuse,
        options: &[
            "addnode",
            "seednode",
            "signetseednode",
            "forcednsseed",
            "externalip",
            "proxy",
            "proxyrandomize",
            "onion",
            "torcontrol",
            "torpassword",
            "i2psam",
            "i2pacceptincoming",
            "cjdnsreachable",
            "upnp",
            "pcp",
        ],
        values: Values::Any,
        negation_allowed: true,
        why: "makes the node reach peers or services the manifest does not declare (outside the lab, or lab nodes behind regbox's back, where partitions and `verify` do not see them); declare peers in `topology`, or connect them with `regbox rpc NODE addnode …`",
    },
    Class {
        name: "names a file or directory",
        rule: Rule::Refuse,
        options: &[
            "includeconf",
            "settings",
            "pid",
            "debuglogfile",
            "blocksdir",
            "walletdir",
            "loadblock",
            "rpccookiefile",
            "asmap",
            "ipcbind",
        ],
        values: Values::Any,
        negation_allowed: true,
        why: "names a file or directory, and regbox owns a node's files (its data directory is the volume regbox made and removes); a path may also load settings this check never sees",
    },
    Class {
        name: "names a wallet by its path",
        rule: Rule::Refuse,
        options: &["wallet"],
        // A plain name stays in the node's wallet directory; one with a `/` may lead anywhere (`/x`,
        // `../../x`).
        values: Values::Containing("/"),
        negation_allowed: true,
        why: "names the wallet by a path, and regbox owns a node's files (its data directory is the volume regbox made and removes); give the wallet a plain name, which bitcoind keeps in that directory",
    },
    Class {
        name: "publishes on a socket file",
        rule: Rule::Refuse,
        options: &["zmqpub*"],
        // `tcp://…` listens inside the node's own container and is allowed.
        values: Values::StartingWith("ipc:"),
        negation_allowed: true,
        why: "publishes on a ZeroMQ socket file (`ipc:`), a path in the node's files, which regbox owns; publish on `tcp://0.0.0.0:PORT` instead",
    },
    Class {
        name: "cuts regbox off",
        rule: Rule::Refuse,
        options: &[
            "rpcwhitelist",
            "rpcwhitelistdefault",
            "help",
            "help-debug",
            "h",
            "?",
            "version",
            "stopatheight",
        ],
        values: Values::Any,
        // bitcoind prints its help and exits when `-help` (`-h`, `-?`) is *set*, and `-nohelp` sets it
        // (to false): here even a plain negation is the harm.
        negation_allowed: false,
        why: "keeps regbox from running the node or calling its RPC (the node prints its help or version and exits, stops at a height, or answers only some calls)",
    },
    Class {
        name: "may break the wiring",
        rule: Rule::Warn,
        options: &["maxconnections", "networkactive", "onlynet"],
        values: Values::Any,
        // `-nonetworkactive`, `-nologtimestamps`: here the negation is the harm.
        negation_allowed: false,
        why: "may leave the node unable to take the peers its topology declares (too few connection slots, P2P off, or IPv4 — the lab's networks — not allowed)",
    },
    Class {
        name: "may stall regbox's waits",
        rule: Rule::Warn,
        options: &["blocksonly", "disablewallet", "logtimestamps"],
        values: Values::Any,
        // `-nonetworkactive`, `-nologtimestamps`: here the negation is the harm.
        negation_allowed: false,
        why: "may stall what regbox waits for or reads (no transaction relay, no wallet for `send`, or no log times for `measure`)",
    },
    Class {
        name: "listens on another port",
        rule: Rule::Warn,
        options: &["whitebind"],
        values: Values::Any,
        negation_allowed: true,
        why: "listens on another address inside the node's own container; a clash with regbox's P2P port (18444) or RPC port (18443) stops the node",
    },
];

/// An argument as bitcoind reads it on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading<'a> {
    /// The option's name: lower case, without dashes, network section or `no`.
    pub name: String,
    /// Written `-noNAME`.
    pub negated: bool,
    /// What follows the first `=`.
    pub value: Option<&'a str>,
}

/// Reads `arg` as bitcoind does: one or two leading dashes, the value after the first `=`, a network
/// section before a `.` (`-regtest.port`), and a `no` prefix that negates — bitcoind strips it from
/// every name, so no option's name starts with `no`. The name is lower-cased: bitcoind refuses another
/// case on Linux, and the check must not let one through where it would not.
pub fn read(arg: &str) -> Reading<'_> {
    let key = arg.trim_start_matches('-');
    let (key, value) = match key.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (key, None),
    };
    let key = key.to_ascii_lowercase();
    // bitcoind splits the section at the first `.`; a name left with a dot is one it refuses, and the
    // last part is what a looser reader would take: judging that one covers both.
    let key = key.rsplit_once('.').map_or(key.as_str(), |(_, k)| k);
    let (name, negated) = match key.strip_prefix("no") {
        Some(rest) => (rest, true),
        None => (key, false),
    };
    Reading {
        name: name.to_string(),
        negated,
        value,
    }
}

impl Reading<'_> {
    /// Whether the argument only turns its option off: `-nofoo`, `-nofoo=` or `-nofoo=1`. bitcoind reads
    /// `-nofoo=0` (any value that is not true) as a double negative that sets the option.
    pub fn turns_off(&self) -> bool {
        self.negated && matches!(self.value, None | Some("") | Some("1"))
    }
}

/// The policy's row for an argument as read, if any: the first whose options name it and whose
/// values admit its value.
pub fn class_of(reading: &Reading) -> Option<&'static Class> {
    let name = reading.name.as_str();
    POLICY.iter().find(|c| {
        c.values.admit(reading.value)
            && c.options.iter().any(|o| {
                if let Some(suffix) = o.strip_prefix('*') {
                    name.ends_with(suffix)
                } else if let Some(prefix) = o.strip_suffix('*') {
                    name.starts_with(prefix)
                } else {
                    *o == name
                }
            })
    })
}

/// What the policy says of one argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Warned(&'static Class),
    Refused(&'static Class),
}

/// Judges one argument (which starts with `-` and names an option: the reader checks that first).
pub fn judge(arg: &str) -> Verdict {
    let reading = read(arg);
    let Some(class) = class_of(&reading) else {
        return Verdict::Allowed;
    };
    if class.negation_allowed && reading.turns_off() {
        return Verdict::Allowed;
    }
    match class.rule {
        Rule::Refuse => Verdict::Refused(class),
        Rule::Warn => Verdict::Warned(class),
    }
}

/// `arg` as a message shows it: the value elided, so that a password does not end up in a log.
pub fn written(arg: &str) -> String {
    match arg.split_once('=') {
        Some((k, _)) => format!("{k}=…"),
        None => arg.to_owned(),
    }
}

impl Verdict {
    /// The error or warning for `arg` (None when allowed).
    pub fn message(&self, arg: &str) -> Option<String> {
        let shown = crate::core::names::shown(&written(arg));
        match self {
            Verdict::Allowed => None,
            Verdict::Refused(c) if c.name == SET_BY_REGBOX => {
                Some(format!("argument `{shown}` {}", c.why))
            }
            Verdict::Refused(c) => Some(format!("argument `{shown}` is refused: it {}", c.why)),
            Verdict::Warned(c) => Some(format!("argument `{shown}` is allowed, but it {}", c.why)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(arg: &str) -> Option<&'static str> {
        match judge(arg) {
            Verdict::Allowed => None,
            Verdict::Warned(c) | Verdict::Refused(c) => Some(c.name),
        }
    }

    fn refused(arg: &str) -> bool {
        matches!(judge(arg), Verdict::Refused(_))
    }

    #[test]
    fn each_refused_class_refuses_its_options() {
        for (arg, name) in [
            ("-rpcbind=0.0.0.0", "set by regbox"),
            ("-server=0", "set by regbox"),
            ("-blocknotify=touch /tmp/x", "runs a shell command"),
            ("-walletnotify=curl x", "runs a shell command"),
            ("-alertnotify=x", "runs a shell command"),
            ("-startupnotify=x", "runs a shell command"),
            ("-shutdownnotify=x", "runs a shell command"),
            ("-futurenotify=x", "runs a shell command"),
            ("-signer=/usr/bin/hwi", "runs a shell command"),
            (
                "-proxy=127.0.0.1:9050",
                "dials outside the declared topology",
            ),
            ("-onion=1.2.3.4:9050", "dials outside the declared topology"),
            (
                "-torcontrol=1.2.3.4:9051",
                "dials outside the declared topology",
            ),
            (
                "-i2psam=1.2.3.4:7656",
                "dials outside the declared topology",
            ),
            ("-addnode=10.0.0.1", "dials outside the declared topology"),
            ("-seednode=10.0.0.1", "dials outside the declared topology"),
            ("-externalip=1.2.3.4", "dials outside the declared topology"),
            ("-forcednsseed", "dials outside the declared topology"),
            ("-upnp", "dials outside the declared topology"),
            ("-includeconf=/x.conf", "names a file or directory"),
            ("-settings=/tmp/s.json", "names a file or directory"),
            ("-pid=/tmp/p", "names a file or directory"),
            ("-debuglogfile=/tmp/d", "names a file or directory"),
            ("-blocksdir=/tmp", "names a file or directory"),
            ("-walletdir=/tmp", "names a file or directory"),
            ("-loadblock=/tmp/b", "names a file or directory"),
            ("-rpcwhitelist=u:getblockcount", "cuts regbox off"),
            ("-version", "cuts regbox off"),
            ("-h", "cuts regbox off"),
            ("-?", "cuts regbox off"),
            ("-help", "cuts regbox off"),
            ("-nohelp", "cuts regbox off"),
            ("-stopatheight=200", "cuts regbox off"),
            ("-wallet=/abs/path", "names a wallet by its path"),
            ("-wallet=../../w", "names a wallet by its path"),
            ("-wallet=sub/w", "names a wallet by its path"),
            ("-zmqpubrawblock=ipc:///tmp/z", "publishes on a socket file"),
            ("-zmqpubhashtx=ipc://z", "publishes on a socket file"),
            ("-zmqpubsequence=ipc:z", "publishes on a socket file"),
        ] {
            assert!(refused(arg), "{arg} is not refused");
            assert_eq!(class(arg), Some(name), "{arg}");
        }
    }

    #[test]
    fn warned_options_are_taken_with_a_warning() {
        for arg in [
            "-maxconnections=2",
            "-nonetworkactive",
            "-networkactive=0",
            "-onlynet=onion",
            "-blocksonly",
            "-disablewallet",
            "-nologtimestamps",
            "-whitebind=0.0.0.0:18444",
        ] {
            assert!(matches!(judge(arg), Verdict::Warned(_)), "{arg}");
        }
    }

    #[test]
    fn harmless_options_are_allowed() {
        for arg in [
            "-debug=net",
            "-nodebug",
            "-dbcache=4",
            "-maxmempool=5",
            "-rest",
            "-zmqpubrawblock=tcp://0.0.0.0:28332",
            "-zmqpubhashtx=tcp://0.0.0.0:28333",
            "-whitelist=noban@0.0.0.0/0",
            "-txindex",
            "-fallbackfee=0.001",
            "-maxsigcachesize=4",
            "-wallet=w1",
            "-wallet=",
            "-nowallet",
            "-zmqpubrawtx=tcp://0.0.0.0:28334",
            "-zmqpubrawblockhwm=1000",
        ] {
            assert_eq!(judge(arg), Verdict::Allowed, "{arg}");
        }
    }

    #[test]
    fn no_spelling_bypasses_the_table() {
        for arg in [
            "-blocknotify=x",
            "--blocknotify=x",
            "---blocknotify=x",
            "-BlockNotify=x",
            "-BLOCKNOTIFY",
            "-blocknotify",
            "-blocknotify=",
            "-regtest.blocknotify=x",
            "--main.blocknotify=x",
            "-noblocknotify=0",
            "-noblocknotify=false",
            "-noblocknotify=no",
            "-NoBlockNotify=0",
            "-regtest.noblocknotify=0",
            "-noregtest.blocknotify=x",
            "-a.b.blocknotify=x",
        ] {
            assert_eq!(class(arg), Some("runs a shell command"), "{arg}");
            assert!(refused(arg), "{arg}");
        }
        // The reserved ones take no negation at all: `-nolisten` breaks the wiring.
        for arg in [
            "-nolisten",
            "--nolisten=1",
            "-regtest.noconnect",
            "-NOLISTEN",
        ] {
            assert_eq!(class(arg), Some("set by regbox"), "{arg}");
        }
        // Help, version and stop options: no spelling, not even a negation (`-nohelp` is *set*).
        for arg in [
            "-H",
            "--h",
            "-regtest.h",
            "-noh",
            "-noh=1",
            "--HELP",
            "-main.?",
            "-noversion",
            "-StopAtHeight=5",
            "--regtest.stopatheight=5",
            "-nostopatheight=0",
        ] {
            assert_eq!(class(arg), Some("cuts regbox off"), "{arg}");
            assert!(refused(arg), "{arg}");
        }
        // A path is judged by the value, whatever the name's spelling.
        for (arg, name) in [
            ("-Wallet=/x", "names a wallet by its path"),
            ("--regtest.wallet=/x", "names a wallet by its path"),
            ("-main.WALLET=a/b", "names a wallet by its path"),
            ("-nowallet=/x", "names a wallet by its path"),
            ("--ZMQPUBRAWTX=IPC:///x", "publishes on a socket file"),
            (
                "-regtest.zmqpubsequence=ipc://x",
                "publishes on a socket file",
            ),
            ("-nozmqpubhashblock=ipc://x", "publishes on a socket file"),
        ] {
            assert_eq!(class(arg), Some(name), "{arg}");
            assert!(refused(arg), "{arg}");
        }
    }

    #[test]
    fn a_plain_negation_only_turns_an_option_off_and_is_allowed() {
        for arg in [
            "-noblocknotify",
            "--noblocknotify",
            "-noblocknotify=",
            "-noblocknotify=1",
            "-noproxy",
            "-noupnp",
            "-nodebuglogfile",
            "-nopid",
            "-regtest.noproxy",
        ] {
            assert_eq!(judge(arg), Verdict::Allowed, "{arg}");
        }
    }

    #[test]
    fn reading_follows_bitcoind() {
        let r = read("--regtest.NoDebug=net=1");
        assert_eq!(
            (r.name.as_str(), r.negated, r.value),
            ("debug", true, Some("net=1"))
        );
        assert!(!read("-debug").negated);
        assert!(read("-nofoo").turns_off());
        assert!(!read("-nofoo=0").turns_off());
        assert!(!read("-foo=1").turns_off());
    }

    #[test]
    fn messages_elide_values_and_say_why() {
        let m = judge("-blocknotify=touch /tmp/x")
            .message("-blocknotify=touch /tmp/x")
            .unwrap();
        assert!(
            m.starts_with("argument `-blocknotify=…` is refused: it runs a shell command"),
            "{m}"
        );
        assert!(!m.contains("touch"), "{m}");
        let m = judge("-rpcpassword=secret")
            .message("-rpcpassword=secret")
            .unwrap();
        assert_eq!(
            m,
            "argument `-rpcpassword=…` is set by regbox and may not be overridden"
        );
        let m = judge("-maxconnections=2")
            .message("-maxconnections=2")
            .unwrap();
        assert!(
            m.starts_with("argument `-maxconnections=…` is allowed, but it may"),
            "{m}"
        );
        assert_eq!(judge("-debug=net").message("-debug=net"), None);
    }

    #[test]
    fn every_option_is_in_one_class_only() {
        let mut seen = std::collections::HashSet::new();
        for c in POLICY {
            for o in c.options {
                assert!(seen.insert(*o), "`{o}` is in two classes");
                assert!(!o.starts_with("no"), "bitcoind strips `no` from `{o}`");
                assert_eq!(o.to_ascii_lowercase(), *o);
            }
        }
    }
}
