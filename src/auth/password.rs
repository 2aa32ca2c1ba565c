//! Passwords: argon2id hashes in PHC string form (the parameters and the
//! salt travel with the hash, so they can be raised later without breaking
//! stored hashes), generated one-time passwords, and a dummy hash so that an
//! unknown username costs as much time as a wrong password.
//!
//! Parameters are the `argon2` crate's defaults: argon2id, 19 MiB, two
//! passes, one lane — OWASP's recommended minimum. One hash takes some tens
//! of milliseconds, so callers on the async runtime use `spawn_blocking`.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::rngs::OsRng;
use rand::Rng;

/// Passwords longer than this are refused without hashing: nobody types
/// them, and hashing megabytes on request is a cheap way to burn our CPU.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Characters of generated passwords: lowercase letters and digits without
/// look-alikes (0/o, 1/l/i), so they can be read out over the phone.
const PASSWORD_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// Groups of [`GROUP_LENGTH`] characters; 20 characters of a 31-letter
/// alphabet hold about 99 bits.
const GROUPS: usize = 4;
const GROUP_LENGTH: usize = 5;

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("failed to hash the password: {0}")]
pub struct PasswordError(argon2::password_hash::Error);

/// Returns the argon2id hash of `password` with a fresh random salt, as a
/// PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
///
/// # Errors
/// Only for inputs argon2 cannot take (none of our passwords).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(PasswordError)
}

/// Returns whether `password` matches the PHC hash; a malformed hash or an
/// overlong password never matches.
pub fn verify_password(password: &str, phc_hash: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(phc_hash) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Returns a hash of a random password nobody knows, made once per
/// process: sign-in checks an unknown username's password against it, so
/// that the answer takes as long as for a known one.
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password(&generate_password()).expect("hashing a generated password succeeds")
    })
}

/// Returns a new random password such as `k7mqa-3xhtp-9wzre-bn4cd`.
pub fn generate_password() -> String {
    let mut rng = OsRng;
    let mut password = String::with_capacity(GROUPS * (GROUP_LENGTH + 1));
    for group in 0..GROUPS {
        if group > 0 {
            password.push('-');
        }
        for _ in 0..GROUP_LENGTH {
            let index = rng.gen_range(0..PASSWORD_ALPHABET.len());
            password.push(char::from(PASSWORD_ALPHABET[index]));
        }
    }
    password
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_own_password_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct hors", &hash));
        assert!(!verify_password("", &hash));
    }

    #[test]
    fn the_same_password_hashes_differently_each_time() {
        let first = hash_password("welkom01").unwrap();
        let second = hash_password("welkom01").unwrap();
        assert_ne!(first, second, "a fresh salt every time");
        assert!(verify_password("welkom01", &second));
    }

    #[test]
    fn malformed_hashes_and_overlong_passwords_never_match() {
        assert!(!verify_password("x", "not a hash"));
        assert!(!verify_password("x", ""));
        let long = "a".repeat(MAX_PASSWORD_BYTES + 1);
        let hash = hash_password(&long).unwrap();
        assert!(!verify_password(&long, &hash));
    }

    #[test]
    fn generated_passwords_are_readable_and_differ() {
        let first = generate_password();
        let second = generate_password();
        assert_ne!(first, second);
        assert_eq!(first.len(), GROUPS * GROUP_LENGTH + GROUPS - 1);
        assert!(first.split('-').all(|group| group.len() == GROUP_LENGTH
            && group.bytes().all(|b| PASSWORD_ALPHABET.contains(&b))));
        assert!(!verify_password(&first, dummy_hash()));
    }
}
