//! The agent protocol on forwarded agent channels (`ssh -A`), seen from the middle (sans-IO).
//!
//! A program on the target talks to the person's agent through a channel the gateway relays.
//! Left unchecked that channel is a pipe between the target and whatever the person's client
//! puts behind its agent socket: anything could pass unrecorded. So the gateway frames the
//! messages both ways and lets through only what an agent is for: listing identities,
//! signing, and extension queries (`session-bind@openssh.com`). Every message that passes is
//! recorded as it is; none of these carries a private key. Requests that would (adding a
//! key, smartcard keys) or that change the agent (removing keys, locking) are answered
//! `SSH_AGENT_FAILURE` by the gateway and never reach the person's agent. Bytes that do not
//! frame as agent messages close the channel.

/// The longest message either side may send (OpenSSH's agent caps requests at 256 KiB).
pub const MAX_MESSAGE: usize = 256 * 1024;

const FAILURE: u8 = 5;
const SUCCESS: u8 = 6;
const REQUEST_IDENTITIES: u8 = 11;
const IDENTITIES_ANSWER: u8 = 12;
const SIGN_REQUEST: u8 = 13;
const SIGN_RESPONSE: u8 = 14;
const EXTENSION: u8 = 27;
const EXTENSION_FAILURE: u8 = 28;

/// Which way bytes go on the agent channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentSide {
    /// A program on the target asking the person's agent.
    Target,
    /// The person's agent answering.
    Agent,
}

/// What to do with the bytes fed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Whole messages to record and pass on.
    pub forward: Vec<u8>,
    /// Answers to send back in the agent's stead (refusals), to record too.
    pub reply: Vec<u8>,
    /// The names of the requests refused, for the recording.
    pub refused: Vec<&'static str>,
    /// The stream is not the agent protocol: close the channel.
    pub close: Option<String>,
}

/// One direction's framing.
#[derive(Debug, Default)]
pub struct AgentFilter {
    from_target: Vec<u8>,
    from_agent: Vec<u8>,
    closed: bool,
}

fn request_name(ty: u8) -> &'static str {
    match ty {
        1 | 2 | 3 | 7 | 8 | 9 => "an SSH protocol 1 request",
        17 | 25 => "adding a key",
        18 => "removing a key",
        19 => "removing every key",
        20 | 26 => "adding a smartcard key",
        21 => "removing a smartcard key",
        22 => "locking the agent",
        23 => "unlocking the agent",
        _ => "an unknown request",
    }
}

impl AgentFilter {
    /// Feeds bytes that arrived from `from`.
    pub fn feed(&mut self, from: AgentSide, data: &[u8]) -> Verdict {
        let mut v = Verdict::default();
        if self.closed {
            v.close = Some("the agent channel was already closed".into());
            return v;
        }
        let buf = match from {
            AgentSide::Target => &mut self.from_target,
            AgentSide::Agent => &mut self.from_agent,
        };
        buf.extend_from_slice(data);
        let mut pos = 0;
        while buf.len() - pos >= 4 {
            let len =
                u32::from_be_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]) as usize;
            if len == 0 || len > MAX_MESSAGE {
                v.close = Some(format!("an agent message of {len} bytes"));
                break;
            }
            if buf.len() - pos < 4 + len {
                break;
            }
            let msg = &buf[pos..pos + 4 + len];
            let ty = msg[4];
            let allowed = match from {
                AgentSide::Target => matches!(ty, REQUEST_IDENTITIES | SIGN_REQUEST | EXTENSION),
                AgentSide::Agent => matches!(
                    ty,
                    FAILURE | SUCCESS | IDENTITIES_ANSWER | SIGN_RESPONSE | EXTENSION_FAILURE
                ),
            };
            match (allowed, from) {
                (true, _) => v.forward.extend_from_slice(msg),
                (false, AgentSide::Target) => {
                    v.reply.extend_from_slice(&[0, 0, 0, 1, FAILURE]);
                    v.refused.push(request_name(ty));
                }
                (false, AgentSide::Agent) => {
                    v.close = Some(format!("the agent sent message type {ty}, not an answer"));
                    break;
                }
            }
            pos += 4 + len;
        }
        if v.close.is_some() {
            self.closed = true;
            self.from_target = Vec::new();
            self.from_agent = Vec::new();
            v.forward.clear();
            return v;
        }
        buf.drain(..pos);
        v
    }

    /// Bytes held for an unfinished message (at most one message per direction).
    #[cfg(test)]
    fn buffered(&self) -> usize {
        self.from_target.len() + self.from_agent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut m = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        m.push(ty);
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn signing_passes_and_is_recorded_whole_however_it_is_split() {
        let req = [msg(REQUEST_IDENTITIES, b""), msg(SIGN_REQUEST, b"data to sign")].concat();
        for split in 0..req.len() {
            let mut f = AgentFilter::default();
            let mut forwarded = f.feed(AgentSide::Target, &req[..split]).forward;
            forwarded.extend(f.feed(AgentSide::Target, &req[split..]).forward);
            assert_eq!(forwarded, req, "split at {split}");
        }
        let mut f = AgentFilter::default();
        let answer = msg(SIGN_RESPONSE, b"signature");
        assert_eq!(f.feed(AgentSide::Agent, &answer).forward, answer);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn key_changing_requests_are_refused_in_the_agents_stead() {
        let mut f = AgentFilter::default();
        let add = msg(17, b"ssh-ed25519 PRIVATE KEY BYTES");
        let v = f.feed(AgentSide::Target, &[add, msg(REQUEST_IDENTITIES, b"")].concat());
        assert_eq!(v.forward, msg(REQUEST_IDENTITIES, b""), "the key never passes");
        assert_eq!(v.reply, [0, 0, 0, 1, FAILURE]);
        assert_eq!(v.refused, ["adding a key"]);
    }

    /// Issue 9: an agent channel used as a plain pipe is closed, not relayed.
    #[test]
    fn anything_else_closes_the_channel() {
        let mut f = AgentFilter::default();
        let v = f.feed(AgentSide::Target, b"ls -la /root\n");
        assert!(v.close.is_some(), "{v:?}");
        assert!(v.forward.is_empty());
        let mut f = AgentFilter::default();
        let v = f.feed(AgentSide::Agent, &msg(SIGN_REQUEST, b"a request from the wrong side"));
        assert!(v.close.is_some());
        let mut f = AgentFilter::default();
        let v = f.feed(AgentSide::Target, &((MAX_MESSAGE + 1) as u32).to_be_bytes());
        assert!(v.close.is_some(), "oversized");
        assert!(f.feed(AgentSide::Target, &msg(REQUEST_IDENTITIES, b"")).close.is_some());
    }
}
