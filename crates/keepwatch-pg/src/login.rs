//! The gateway's side of logging into a target: answering whatever the server asks for with
//! the vaulted password (SCRAM-SHA-256, md5 or cleartext).

use std::fmt;

use md5::{Digest, Md5};

use crate::event::hex;
use crate::message::AuthRequest;
use crate::scram::{SCRAM_SHA_256, ScramClient, ScramError};
use crate::wire::{self, EncodeMessageError};

/// Logging into a target failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("the target asks for {0}, which the gateway cannot answer")]
    Unsupported(String),
    #[error("the target offers SASL mechanisms {0:?}, not SCRAM-SHA-256")]
    NoScram(Vec<String>),
    #[error("SCRAM with the target failed")]
    Scram(#[from] ScramError),
    #[error("the target accepted the login before proving it knows the password")]
    UnverifiedServer,
    #[error("the target sent {0} out of order")]
    OutOfOrder(&'static str),
    #[error(transparent)]
    Encode(#[from] EncodeMessageError),
}

/// The answer PostgreSQL's md5 method expects: `md5` + md5(md5(password + user) + salt), in
/// lowercase hex.
pub fn md5_password(user: &str, password: &str, salt: [u8; 4]) -> String {
    let inner = hex(&Md5::new().chain_update(password).chain_update(user).finalize());
    let outer = Md5::new().chain_update(inner).chain_update(salt).finalize();
    format!("md5{}", hex(&outer))
}

/// Answers a target's Authentication requests for one login.
pub struct TargetLogin {
    user: String,
    password: String,
    scram: Option<ScramClient>,
}

impl fmt::Debug for TargetLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetLogin")
            .field("user", &self.user)
            .field("password", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl TargetLogin {
    pub fn new(user: &str, password: &str) -> Self {
        TargetLogin { user: user.to_owned(), password: password.to_owned(), scram: None }
    }

    /// The message to send back for `request` (`None`: nothing to send). After
    /// `AuthenticationOk`, the login is done.
    ///
    /// # Errors
    ///
    /// A method the gateway cannot use (Kerberos, GSS, SSPI), a SCRAM failure (including a
    /// server that does not prove it knows the password, or that says Ok without proving
    /// it once SCRAM has started), or a request out of order.
    pub fn respond(&mut self, request: &AuthRequest) -> Result<Option<Vec<u8>>, LoginError> {
        match request {
            AuthRequest::Ok => match &self.scram {
                Some(scram) if !scram.is_verified() => Err(LoginError::UnverifiedServer),
                _ => Ok(None),
            },
            AuthRequest::CleartextPassword => Ok(Some(wire::password_message(&self.password)?)),
            AuthRequest::Md5Password { salt } => {
                let answer = md5_password(&self.user, &self.password, *salt);
                Ok(Some(wire::password_message(&answer)?))
            }
            AuthRequest::Sasl { mechanisms } => {
                if !mechanisms.iter().any(|m| m == SCRAM_SHA_256) {
                    return Err(LoginError::NoScram(mechanisms.clone()));
                }
                let mut scram = ScramClient::new(&self.password)?;
                let first = scram.client_first();
                self.scram = Some(scram);
                Ok(Some(wire::sasl_initial_response(SCRAM_SHA_256, first.as_bytes())?))
            }
            AuthRequest::SaslContinue(data) => {
                let scram = self.scram.as_mut().ok_or(LoginError::OutOfOrder("SASLContinue"))?;
                let last = scram.server_first(data)?;
                Ok(Some(wire::sasl_response(last.as_bytes())?))
            }
            AuthRequest::SaslFinal(data) => {
                let scram = self.scram.as_mut().ok_or(LoginError::OutOfOrder("SASLFinal"))?;
                scram.server_final(data)?;
                Ok(None)
            }
            other => Err(LoginError::Unsupported(format!("{other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_answer_matches_postgres() {
        // Computed independently (Python's hashlib): 'md5' + md5(md5('secretpostgres') + salt).
        let expected = "md5bb41a296aab6baccb36ff243a562abff";
        assert_eq!(md5_password("postgres", "secret", [1, 2, 3, 4]), expected);
    }

    #[test]
    fn ok_without_scram_proof_is_refused() {
        let mut login = TargetLogin::new("app", "pw");
        let mechanisms = vec![SCRAM_SHA_256.to_owned()];
        assert!(login.respond(&AuthRequest::Sasl { mechanisms }).unwrap().is_some());
        assert_eq!(login.respond(&AuthRequest::Ok), Err(LoginError::UnverifiedServer));
    }

    #[test]
    fn unsupported_methods_are_named() {
        let mut login = TargetLogin::new("app", "pw");
        let err = login.respond(&AuthRequest::Gss).unwrap_err();
        assert_eq!(err.to_string(), "the target asks for Gss, which the gateway cannot answer");
        let err = login.respond(&AuthRequest::Sasl { mechanisms: vec!["OAUTHBEARER".into()] });
        assert!(matches!(err, Err(LoginError::NoScram(_))));
    }
}
