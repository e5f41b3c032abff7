//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL does it: no channel binding (only
//! `SCRAM-SHA-256` is offered, never `-PLUS`), the user name taken from the startup packet
//! rather than the exchange, passwords prepared with SASLprep when they can be, and the stored
//! verifier written `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The one mechanism offered and used.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
/// PostgreSQL's default (`scram_iterations`).
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// A server may ask a client for more; past this the client refuses rather than spin.
pub const MAX_ITERATIONS: u32 = 1_000_000;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 18;

type HmacSha256 = Hmac<Sha256>;

/// A SCRAM exchange went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM {message}: {problem}")]
    Malformed { message: &'static str, problem: &'static str },
    #[error("SASL mechanism {0:?} is not offered, only SCRAM-SHA-256")]
    UnsupportedMechanism(String),
    #[error("the client asked for channel binding, which is not offered")]
    ChannelBinding,
    #[error("the nonce does not continue the one sent")]
    NonceMismatch,
    #[error("the proof does not match the password")]
    WrongProof,
    #[error("the server's signature is wrong: it does not know the password")]
    WrongServerSignature,
    #[error("the server refused the proof: {0}")]
    Refused(String),
    #[error("{iterations} iterations asked, more than the {limit} accepted")]
    TooManyIterations { iterations: u32, limit: u32 },
    #[error("SCRAM message out of order")]
    OutOfOrder,
    #[error("no randomness for a nonce or salt: {0}")]
    Random(String),
}

/// A stored SCRAM-SHA-256 verifier did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed SCRAM-SHA-256 verifier: {0}")]
pub struct ParseVerifierError(&'static str);

/// What the server keeps instead of a password: enough to check a client's proof and to
/// prove it knows the password, never enough to log in elsewhere.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .field("keys", &"[redacted]")
            .finish()
    }
}

impl ScramVerifier {
    /// A verifier for `password` with a random 16-byte salt and 4096 iterations, as
    /// PostgreSQL makes them.
    ///
    /// # Errors
    ///
    /// The system has no randomness to give.
    pub fn new(password: &str) -> Result<Self, ScramError> {
        let mut salt = [0; SALT_LEN];
        getrandom::fill(&mut salt).map_err(|e| ScramError::Random(e.to_string()))?;
        Ok(Self::with_salt(password, &salt, DEFAULT_ITERATIONS))
    }

    pub fn with_salt(password: &str, salt: &[u8], iterations: u32) -> Self {
        let salted = salted_password(password, salt, iterations);
        ScramVerifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: stored_key(&salted),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    /// Whether `password` is the one this verifier was made from (in constant time).
    pub fn verify_password(&self, password: &str) -> bool {
        let other = Self::with_salt(password, &self.salt, self.iterations);
        let same =
            self.stored_key.ct_eq(&other.stored_key) & self.server_key.ct_eq(&other.server_key);
        same.into()
    }
}

impl fmt::Display for ScramVerifier {
    /// PostgreSQL's text form, as stored in `pg_authid.rolpassword`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCRAM_SHA_256}${}:{}${}:{}",
            self.iterations,
            BASE64.encode(&self.salt),
            BASE64.encode(self.stored_key),
            BASE64.encode(self.server_key)
        )
    }
}

impl FromStr for ScramVerifier {
    type Err = ParseVerifierError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or(ParseVerifierError("does not start with SCRAM-SHA-256$"))?;
        let (params, keys) = rest.split_once('$').ok_or(ParseVerifierError("no keys after '$'"))?;
        let (iterations, salt) = params
            .split_once(':')
            .ok_or(ParseVerifierError("no ':' between iterations and salt"))?;
        let (stored, server) =
            keys.split_once(':').ok_or(ParseVerifierError("no ':' between the keys"))?;
        let iterations: u32 =
            iterations.parse().map_err(|_| ParseVerifierError("iterations not a number"))?;
        if iterations == 0 {
            return Err(ParseVerifierError("zero iterations"));
        }
        let salt = BASE64.decode(salt).map_err(|_| ParseVerifierError("salt not base64"))?;
        let key = |k: &str, what| -> Result<[u8; 32], ParseVerifierError> {
            let bytes = BASE64.decode(k).map_err(|_| ParseVerifierError(what))?;
            bytes.try_into().map_err(|_| ParseVerifierError(what))
        };
        Ok(ScramVerifier {
            iterations,
            salt,
            stored_key: key(stored, "StoredKey not 32 bytes of base64")?,
            server_key: key(server, "ServerKey not 32 bytes of base64")?,
        })
    }
}

/// The server side of one exchange, for a person logging in with a password whose verifier
/// the gateway keeps.
#[derive(Debug)]
pub struct ScramServer {
    verifier: ScramVerifier,
    nonce: String,
    state: ServerState,
}

#[derive(Debug)]
enum ServerState {
    Initial,
    SentFirst { client_first_bare: String, server_first: String, full_nonce: String, gs2: String },
    Done,
}

impl ScramServer {
    /// # Errors
    ///
    /// The system has no randomness for the nonce.
    pub fn new(verifier: ScramVerifier) -> Result<Self, ScramError> {
        Ok(Self::with_nonce(verifier, random_nonce()?))
    }

    pub(crate) fn with_nonce(verifier: ScramVerifier, nonce: String) -> Self {
        ScramServer { verifier, nonce, state: ServerState::Initial }
    }

    /// Takes the SASLInitialResponse's mechanism and data (client-first-message) and returns
    /// the server-first-message to send in AuthenticationSASLContinue.
    ///
    /// # Errors
    ///
    /// Another mechanism, channel binding asked for, an authorization identity, a malformed
    /// message, or a call out of order.
    pub fn client_first(&mut self, mechanism: &str, data: &[u8]) -> Result<String, ScramError> {
        if !matches!(self.state, ServerState::Initial) {
            return Err(ScramError::OutOfOrder);
        }
        if mechanism != SCRAM_SHA_256 {
            return Err(ScramError::UnsupportedMechanism(mechanism.to_owned()));
        }
        let bad = |problem| ScramError::Malformed { message: "client-first-message", problem };
        let text = std::str::from_utf8(data).map_err(|_| bad("not UTF-8"))?;
        // gs2-header: a channel-binding flag, an optional authzid, then the bare message.
        let (flag, rest) = text.split_once(',').ok_or_else(|| bad("no gs2 header"))?;
        match flag {
            "n" | "y" => {}
            f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
            _ => return Err(bad("channel-binding flag not n, y or p")),
        }
        let (authzid, bare) = rest.split_once(',').ok_or_else(|| bad("no gs2 header"))?;
        if !authzid.is_empty() {
            return Err(bad("authorization identities are not supported"));
        }
        let mut fields = bare.split(',');
        let user = fields.next().ok_or_else(|| bad("no user name"))?;
        if user.starts_with("m=") {
            return Err(bad("mandatory extensions are not supported"));
        }
        // PostgreSQL ignores the user name here: it comes from the startup packet.
        user.strip_prefix("n=").ok_or_else(|| bad("no user name"))?;
        let client_nonce =
            fields.next().and_then(|f| f.strip_prefix("r=")).ok_or_else(|| bad("no nonce"))?;
        if client_nonce.is_empty()
            || !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
        {
            return Err(bad("nonce not printable"));
        }
        let full_nonce = format!("{client_nonce}{}", self.nonce);
        let server_first = format!(
            "r={full_nonce},s={},i={}",
            BASE64.encode(&self.verifier.salt),
            self.verifier.iterations
        );
        self.state = ServerState::SentFirst {
            client_first_bare: bare.to_owned(),
            server_first: server_first.clone(),
            full_nonce,
            gs2: format!("{flag},{authzid},"),
        };
        Ok(server_first)
    }

    /// Takes the SASLResponse data (client-final-message), checks the proof and returns the
    /// server-final-message to send in AuthenticationSASLFinal.
    ///
    /// # Errors
    ///
    /// [`ScramError::WrongProof`] when the client does not know the password; a malformed
    /// message, a nonce or channel-binding echo that differs from what was exchanged, or a
    /// call out of order.
    pub fn client_final(&mut self, data: &[u8]) -> Result<String, ScramError> {
        let ServerState::SentFirst { client_first_bare, server_first, full_nonce, gs2 } =
            std::mem::replace(&mut self.state, ServerState::Done)
        else {
            return Err(ScramError::OutOfOrder);
        };
        let bad = |problem| ScramError::Malformed { message: "client-final-message", problem };
        let text = std::str::from_utf8(data).map_err(|_| bad("not UTF-8"))?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(|| bad("no proof"))?;
        let mut fields = without_proof.split(',');
        let binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or_else(|| bad("no channel binding"))?;
        if BASE64.decode(binding).ok().as_deref() != Some(gs2.as_bytes()) {
            return Err(bad("channel binding does not repeat the gs2 header"));
        }
        let nonce =
            fields.next().and_then(|f| f.strip_prefix("r=")).ok_or_else(|| bad("no nonce"))?;
        if nonce != full_nonce {
            return Err(ScramError::NonceMismatch);
        }
        let proof: [u8; 32] = BASE64
            .decode(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| bad("proof not 32 bytes of base64"))?;
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = hmac(&self.verifier.stored_key, auth_message.as_bytes());
        let client_key: [u8; 32] = std::array::from_fn(|i| proof[i] ^ client_signature[i]);
        let computed: [u8; 32] = Sha256::digest(client_key).into();
        if !bool::from(computed.ct_eq(&self.verifier.stored_key)) {
            return Err(ScramError::WrongProof);
        }
        let server_signature = hmac(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", BASE64.encode(server_signature)))
    }
}

/// The client side of one exchange, for the gateway logging into a target.
pub struct ScramClient {
    password: String,
    user: String,
    nonce: String,
    state: ClientState,
}

impl fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramClient").field("password", &"[redacted]").finish_non_exhaustive()
    }
}

enum ClientState {
    Initial,
    SentFirst,
    SentFinal {
        server_signature: [u8; 32],
    },
    /// The server proved it knows the password.
    Verified,
    Failed,
}

impl ScramClient {
    /// # Errors
    ///
    /// The system has no randomness for the nonce.
    pub fn new(password: &str) -> Result<Self, ScramError> {
        Ok(Self::with_nonce(password, "", random_nonce()?))
    }

    /// `user` goes into the client-first-message; PostgreSQL clients leave it empty.
    pub(crate) fn with_nonce(password: &str, user: &str, nonce: String) -> Self {
        ScramClient {
            password: password.to_owned(),
            user: user.to_owned(),
            nonce,
            state: ClientState::Initial,
        }
    }

    /// The client-first-message, for SASLInitialResponse with mechanism `SCRAM-SHA-256`.
    pub fn client_first(&mut self) -> String {
        self.state = ClientState::SentFirst;
        format!("n,,{}", self.client_first_bare())
    }

    fn client_first_bare(&self) -> String {
        format!("n={},r={}", self.user, self.nonce)
    }

    /// Takes the server-first-message (AuthenticationSASLContinue) and returns the
    /// client-final-message (SASLResponse).
    ///
    /// # Errors
    ///
    /// A malformed message, a nonce that does not start with ours, more than
    /// [`MAX_ITERATIONS`], or a call out of order.
    pub fn server_first(&mut self, data: &[u8]) -> Result<String, ScramError> {
        if !matches!(self.state, ClientState::SentFirst) {
            return Err(ScramError::OutOfOrder);
        }
        let bad = |problem| ScramError::Malformed { message: "server-first-message", problem };
        let text = std::str::from_utf8(data).map_err(|_| bad("not UTF-8"))?;
        let mut fields = text.split(',');
        let mut field = |prefix: &str, problem| {
            fields.next().and_then(|f| f.strip_prefix(prefix)).ok_or_else(|| bad(problem))
        };
        let nonce = field("r=", "no nonce")?;
        let salt = field("s=", "no salt")?;
        let iterations = field("i=", "no iteration count")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramError::NonceMismatch);
        }
        let salt = BASE64.decode(salt).map_err(|_| bad("salt not base64"))?;
        let iterations: u32 =
            iterations.parse().map_err(|_| bad("iteration count not a number"))?;
        if iterations == 0 {
            return Err(bad("zero iterations"));
        }
        if iterations > MAX_ITERATIONS {
            return Err(ScramError::TooManyIterations { iterations, limit: MAX_ITERATIONS });
        }
        let salted = salted_password(&self.password, &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored = stored_key(&salted);
        let server_key = hmac(&salted, b"Server Key");
        let without_proof = format!("c={},r={nonce}", BASE64.encode("n,,"));
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare());
        let client_signature = hmac(&stored, auth_message.as_bytes());
        let proof: [u8; 32] = std::array::from_fn(|i| client_key[i] ^ client_signature[i]);
        self.state =
            ClientState::SentFinal { server_signature: hmac(&server_key, auth_message.as_bytes()) };
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)))
    }

    /// Takes the server-final-message (AuthenticationSASLFinal) and checks that the server
    /// knows the password.
    ///
    /// # Errors
    ///
    /// [`ScramError::WrongServerSignature`]: do not go on with this server.
    /// [`ScramError::Refused`] when it sent an error instead.
    pub fn server_final(&mut self, data: &[u8]) -> Result<(), ScramError> {
        let ClientState::SentFinal { server_signature } =
            std::mem::replace(&mut self.state, ClientState::Failed)
        else {
            return Err(ScramError::OutOfOrder);
        };
        let bad = |problem| ScramError::Malformed { message: "server-final-message", problem };
        let text = std::str::from_utf8(data).map_err(|_| bad("not UTF-8"))?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(ScramError::Refused(error.to_owned()));
        }
        let verifier = text.split(',').next().and_then(|f| f.strip_prefix("v="));
        let verifier = verifier.ok_or_else(|| bad("no verifier"))?;
        let sent = BASE64.decode(verifier).map_err(|_| bad("verifier not base64"))?;
        if !bool::from(sent.as_slice().ct_eq(&server_signature)) {
            return Err(ScramError::WrongServerSignature);
        }
        self.state = ClientState::Verified;
        Ok(())
    }

    /// Whether the server proved it knows the password.
    pub fn is_verified(&self) -> bool {
        matches!(self.state, ClientState::Verified)
    }
}

fn random_nonce() -> Result<String, ScramError> {
    let mut raw = [0; NONCE_LEN];
    getrandom::fill(&mut raw).map_err(|e| ScramError::Random(e.to_string()))?;
    Ok(BASE64.encode(raw))
}

/// PostgreSQL prepares the password with SASLprep, and uses it as it is when that fails.
fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let prepared = stringprep::saslprep(password);
    let bytes = prepared.as_deref().unwrap_or(password).as_bytes();
    let mut out = [0; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(bytes, salt, iterations, &mut out);
    out
}

fn stored_key(salted: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(hmac(salted, b"Client Key")).into()
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677, section 3: user "user", password "pencil".
    const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_verifier() -> ScramVerifier {
        ScramVerifier::with_salt("pencil", &BASE64.decode(SALT).unwrap(), 4096)
    }

    #[test]
    fn client_matches_rfc_7677() {
        let mut client = ScramClient::with_nonce("pencil", "user", CLIENT_NONCE.into());
        assert_eq!(client.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        assert_eq!(client.server_first(SERVER_FIRST.as_bytes()).unwrap(), CLIENT_FINAL);
        client.server_final(SERVER_FINAL.as_bytes()).unwrap();
        assert!(client.is_verified());
    }

    #[test]
    fn server_matches_rfc_7677() {
        let mut server = ScramServer::with_nonce(rfc_verifier(), SERVER_NONCE.into());
        let first = server.client_first(SCRAM_SHA_256, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        assert_eq!(first.unwrap(), SERVER_FIRST);
        assert_eq!(server.client_final(CLIENT_FINAL.as_bytes()).unwrap(), SERVER_FINAL);
    }

    #[test]
    fn server_refuses_a_wrong_password() {
        let verifier = ScramVerifier::new("pencil").unwrap();
        let mut server = ScramServer::new(verifier).unwrap();
        let mut client = ScramClient::new("pen").unwrap();
        let first = server.client_first(SCRAM_SHA_256, client.client_first().as_bytes()).unwrap();
        let last = client.server_first(first.as_bytes()).unwrap();
        assert_eq!(server.client_final(last.as_bytes()), Err(ScramError::WrongProof));
    }

    #[test]
    fn server_and_client_agree() {
        let verifier: ScramVerifier = ScramVerifier::new("correct horse").unwrap();
        let verifier: ScramVerifier = verifier.to_string().parse().unwrap();
        let mut server = ScramServer::new(verifier).unwrap();
        let mut client = ScramClient::new("correct horse").unwrap();
        let first = server.client_first(SCRAM_SHA_256, client.client_first().as_bytes()).unwrap();
        let last = client.server_first(first.as_bytes()).unwrap();
        let final_message = server.client_final(last.as_bytes()).unwrap();
        client.server_final(final_message.as_bytes()).unwrap();
        assert!(client.is_verified());
    }

    #[test]
    fn client_refuses_a_server_that_does_not_know_the_password() {
        let mut client = ScramClient::with_nonce("pencil", "user", CLIENT_NONCE.into());
        client.client_first();
        client.server_first(SERVER_FIRST.as_bytes()).unwrap();
        let forged = format!("v={}", BASE64.encode([7u8; 32]));
        assert_eq!(client.server_final(forged.as_bytes()), Err(ScramError::WrongServerSignature));
        assert!(!client.is_verified());
    }

    #[test]
    fn client_refuses_a_nonce_it_did_not_start() {
        let mut client = ScramClient::with_nonce("pencil", "", CLIENT_NONCE.into());
        client.client_first();
        let other = SERVER_FIRST.replace("rOpr", "xOpr");
        assert_eq!(client.server_first(other.as_bytes()), Err(ScramError::NonceMismatch));
    }

    #[test]
    fn server_refuses_channel_binding_and_other_mechanisms() {
        let mut server = ScramServer::new(rfc_verifier()).unwrap();
        let plus = server.client_first(SCRAM_SHA_256, b"p=tls-server-end-point,,n=,r=abc");
        assert_eq!(plus, Err(ScramError::ChannelBinding));
        let mut server = ScramServer::new(rfc_verifier()).unwrap();
        let other = server.client_first("SCRAM-SHA-256-PLUS", b"n,,n=,r=abc");
        assert!(matches!(other, Err(ScramError::UnsupportedMechanism(_))));
    }

    #[test]
    fn verifier_text_round_trips_and_checks_passwords() {
        let verifier = rfc_verifier();
        let text = verifier.to_string();
        assert!(text.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"), "{text}");
        assert_eq!(text.parse::<ScramVerifier>().unwrap(), verifier);
        assert!(verifier.verify_password("pencil"));
        assert!(!verifier.verify_password("pencil "));
        assert!("SCRAM-SHA-256$4096:abc".parse::<ScramVerifier>().is_err());
        assert!(format!("{verifier:?}").contains("[redacted]"));
    }
}
