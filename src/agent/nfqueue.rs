//! A minimal NFQUEUE client over a raw netlink socket (the part of libnetfilter_queue the agent needs:
//! bind a queue, receive copied packets, give verdicts, possibly with a changed payload), with the
//! socket's descriptor at hand so the agent can wait on it with a timeout.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_PACKET: u8 = 2;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_PAYLOAD: u16 = 10;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const HEADER: usize = 16 + 4; // nlmsghdr + nfgenmsg

/// A packet handed over by the kernel: its queue id and its bytes from the IP header on.
#[derive(Debug)]
pub struct Packet {
    pub id: u32,
    pub payload: Vec<u8>,
}

/// One bound queue in the network namespace the socket was opened in.
pub struct Queue {
    fd: OwnedFd,
    num: u16,
    seq: u32,
    buf: Vec<u8>,
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl Queue {
    /// Binds queue `num` in the calling thread's network namespace, copying whole packets, holding at
    /// most `max_len` of them (more are dropped, as a full router queue would).
    pub fn open(num: u16, max_len: u32) -> io::Result<Queue> {
        // SAFETY: plain socket calls on a descriptor this function owns.
        let fd = unsafe {
            let raw = check(libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            ))?;
            OwnedFd::from_raw_fd(raw)
        };
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: `addr` is a valid sockaddr_nl of the size given.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        })?;
        // A burst must not overflow the socket (the agent holds CAP_NET_ADMIN, so it may force the
        // size); an overflow is not reported as an error either: those packets are simply gone.
        set_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 8 << 20)?;
        set_int(&fd, libc::SOL_NETLINK, libc::NETLINK_NO_ENOBUFS, 1)?;
        let mut q = Queue {
            fd,
            num,
            seq: 0,
            buf: vec![0; 0x10000 + 8192],
        };
        q.config(NFQA_CFG_CMD, &[NFQNL_CFG_CMD_BIND, 0, 0, 0])?;
        let mut params = 0xffffu32.to_be_bytes().to_vec();
        params.push(NFQNL_COPY_PACKET);
        q.config(NFQA_CFG_PARAMS, &params)?;
        q.config(NFQA_CFG_QUEUE_MAXLEN, &max_len.to_be_bytes())?;
        Ok(q)
    }

    /// Waits until packets can be read, `wake` becomes readable, or `timeout` passes; true when there
    /// are packets to read.
    pub fn wait(&self, timeout: Duration, wake: RawFd) -> io::Result<bool> {
        let mut pfd = [self.fd.as_raw_fd(), wake].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        // Rounded up: a deadline less than a millisecond away must not become a busy poll(0).
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: two valid pollfds.
        match unsafe { libc::poll(pfd.as_mut_ptr(), 2, ms) } {
            -1 => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
            _ => Ok(pfd[0].revents & libc::POLLIN != 0),
        }
    }

    /// Reads what has arrived, without blocking, appending packets to `out`.
    pub fn recv(&mut self, out: &mut Vec<Packet>) -> io::Result<()> {
        loop {
            // SAFETY: `buf` is writable for its whole length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr() as *mut libc::c_void,
                    self.buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(()),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            parse(&self.buf[..n as usize], out)?;
        }
    }

    /// Lets packet `id` go (with `payload` instead of its own, if given) or drops it.
    pub fn verdict(&mut self, id: u32, accept: bool, payload: Option<&[u8]>) -> io::Result<()> {
        let mut hdr = (if accept { NF_ACCEPT } else { NF_DROP })
            .to_be_bytes()
            .to_vec();
        hdr.extend_from_slice(&id.to_be_bytes());
        let mut attrs = vec![(NFQA_VERDICT_HDR, hdr.as_slice())];
        if let Some(p) = payload {
            attrs.push((NFQA_PAYLOAD, p));
        }
        self.send(NFQNL_MSG_VERDICT, NLM_F_REQUEST, &attrs)
    }

    /// A configuration message, acknowledged.
    fn config(&mut self, attr: u16, value: &[u8]) -> io::Result<()> {
        self.send(
            NFQNL_MSG_CONFIG,
            NLM_F_REQUEST | NLM_F_ACK,
            &[(attr, value)],
        )?;
        loop {
            // SAFETY: `buf` is writable for its whole length.
            let n = check(unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr() as *mut libc::c_void,
                    self.buf.len(),
                    0,
                ) as libc::c_int
            })? as usize;
            let msg = &self.buf[..n];
            if n >= 20 && u16::from_ne_bytes([msg[4], msg[5]]) == NLMSG_ERROR {
                let code = i32::from_ne_bytes(msg[16..20].try_into().unwrap());
                return if code == 0 {
                    Ok(())
                } else {
                    Err(io::Error::from_raw_os_error(-code))
                };
            }
        }
    }

    fn send(&mut self, kind: u16, flags: u16, attrs: &[(u16, &[u8])]) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let len = HEADER + attrs.iter().map(|(_, v)| align(4 + v.len())).sum::<usize>();
        let mut m = Vec::with_capacity(len);
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | kind).to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&self.seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: AF_UNSPEC, version 0, the queue number (big-endian).
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&self.num.to_be_bytes());
        for (kind, value) in attrs {
            m.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
            m.extend_from_slice(&kind.to_ne_bytes());
            m.extend_from_slice(value);
            m.resize(align(m.len()), 0);
        }
        // SAFETY: `m` is readable for its whole length.
        let sent = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                m.as_ptr() as *const libc::c_void,
                m.len(),
                0,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

fn set_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: an int option of the right size.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        )
    })
    .map(|_| ())
}

/// The packets in one datagram of netlink messages. An error message (a verdict for a packet the
/// kernel already let go, say) is logged and skipped: it must not stop the packets after it.
fn parse(mut data: &[u8], out: &mut Vec<Packet>) -> io::Result<()> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed netlink message");
    while data.len() >= 16 {
        let len = u32::from_ne_bytes(data[0..4].try_into().unwrap()) as usize;
        if len < 16 || len > data.len() {
            return Err(bad());
        }
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        let msg = &data[..len];
        if kind == NLMSG_ERROR && len >= 20 {
            let code = i32::from_ne_bytes(msg[16..20].try_into().unwrap());
            if code != 0 {
                eprintln!(
                    "regbox agent: the kernel refused a verdict: {}",
                    io::Error::from_raw_os_error(-code)
                );
            }
        } else if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET && len >= HEADER {
            let (mut id, mut payload) = (None, None);
            let mut attrs = &msg[HEADER..];
            while attrs.len() >= 4 {
                let alen = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
                // The top bits of the type are flags (nested, byte order).
                let akind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
                if alen < 4 || alen > attrs.len() {
                    return Err(bad());
                }
                let value = &attrs[4..alen];
                match akind {
                    NFQA_PACKET_HDR if value.len() >= 4 => {
                        id = Some(u32::from_be_bytes(value[0..4].try_into().unwrap()))
                    }
                    NFQA_PAYLOAD => payload = Some(value.to_vec()),
                    _ => {}
                }
                attrs = &attrs[align(alen).min(attrs.len())..];
            }
            if let Some(id) = id {
                out.push(Packet {
                    id,
                    payload: payload.unwrap_or_default(),
                });
            }
        }
        data = &data[align(len).min(data.len())..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut a = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(value);
        a.resize(align(a.len()), 0);
        a
    }

    fn message(kind: u16, body: &[u8]) -> Vec<u8> {
        let len = 16 + body.len();
        let mut m = (len as u32).to_ne_bytes().to_vec();
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn packets_are_read_from_a_datagram_of_several_messages() {
        let mut body = vec![0, 0, 0, 0];
        body.extend(attr(NFQA_PACKET_HDR, &[0, 0, 1, 2, 8, 0, 3]));
        body.extend(attr(NFQA_PAYLOAD, &[0x45, 1, 2]));
        let one = message((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET, &body);
        let mut data = one.clone();
        data.extend(&one);
        let mut out = Vec::new();
        parse(&data, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].id, 258);
        assert_eq!(out[0].payload, vec![0x45, 1, 2]);
    }

    #[test]
    fn an_error_message_is_skipped_and_garbage_is_refused() {
        let mut body = vec![0, 0, 0, 0];
        body.extend(attr(NFQA_PACKET_HDR, &[0, 0, 0, 7, 8, 0, 3]));
        let mut data = message(NLMSG_ERROR, &(-2i32).to_ne_bytes());
        data.extend(message((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET, &body));
        let mut out = Vec::new();
        parse(&data, &mut out).unwrap();
        assert_eq!(out.len(), 1, "the packet after the error is read");
        let mut bad = message(0x300, &[0; 8]);
        bad[0] = 200;
        assert!(parse(&bad, &mut Vec::new()).is_err());
    }
}
