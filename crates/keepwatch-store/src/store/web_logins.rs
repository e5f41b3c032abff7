//! Console logins (browser sessions), kept in the database so that every node sharing it
//! serves them (issue 11): a login made on one node works on the others, a logout or an
//! expiry on one ends it everywhere, and a node's restart logs no one out. Only the SHA-256
//! of a cookie is stored. Expiry is judged by the caller's clock (`now_us`), never by a row
//! being found: an expired login is deleted when it is next looked up.

use super::{Store, dispatch};
use crate::StoreError;
use crate::rows::{WebLoginLimits, WebLoginRow};

impl Store {
    /// Adds a login under `cookie_sha256`, drops expired ones, and keeps the person's
    /// `limits.per_person` most recently used logins (the new one among them): the others
    /// make way.
    ///
    /// # Errors
    /// `Exists` if the hash is taken; database failures.
    pub async fn add_web_login(
        &self,
        cookie_sha256: &str,
        login: &WebLoginRow,
        limits: WebLoginLimits,
    ) -> Result<(), StoreError> {
        dispatch!(self, b => b.add_web_login(cookie_sha256, login, limits).await)
    }

    /// The login of `cookie_sha256` if it is still valid at `now_us` (it is then marked
    /// seen, at most once per `limits.touch_after_us()`); an expired login is deleted.
    ///
    /// # Errors
    /// Database failures, or a row the vocabulary refuses.
    pub async fn web_login(
        &self,
        cookie_sha256: &str,
        now_us: i64,
        limits: WebLoginLimits,
    ) -> Result<Option<WebLoginRow>, StoreError> {
        dispatch!(self, b => b.web_login(cookie_sha256, now_us, limits).await)
    }

    /// Ends the login of `cookie_sha256` (no error if there is none).
    ///
    /// # Errors
    /// Database failures only.
    pub async fn remove_web_login(&self, cookie_sha256: &str) -> Result<(), StoreError> {
        dispatch!(self, b => b.remove_web_login(cookie_sha256).await)
    }

    /// How many logins are held (expired or not), for tests and the operator.
    ///
    /// # Errors
    /// Database failures only.
    pub async fn web_login_count(&self) -> Result<u64, StoreError> {
        dispatch!(self, b => b.web_login_count().await)
    }
}
