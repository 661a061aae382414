// Package mfa holds the second factors' secrets and the rules for checking
// them: TOTP keys (authenticator apps) and lookup codes (printed backup
// codes).
//
// The two are stored differently because they are used differently. A TOTP
// key must be read back to compute the code of the moment, so it cannot be
// hashed: its otpauth URL is kept encrypted under the server's
// secrets.cipher (Cipher, XChaCha20-Poly1305), bound to the identity it
// belongs to, so a copy of the database alone does not give the second factor
// away and a sealed key cannot be moved to another identity. Lookup codes
// are only ever compared, so they are kept as keyed hashes (LookupHasher,
// HMAC-SHA256 under secrets.default) and shown to the user once, when made.
// Both accept several secrets, Kratos-style: the first writes, every one is
// tried on a read, so secrets rotate without a migration.
//
// A TOTP code is accepted once: CheckTOTP returns the time step it matched,
// which the caller stores, and refuses that step and every earlier one
// afterwards. Codes are computed by github.com/pquerna/otp (RFC 4226 and
// RFC 6238), never here.
//
// Nothing in this package puts a secret, a key, a code or a plaintext into an
// error message: errors travel to logs and to clients, so they say which
// rule failed and where, never what the value was.
package mfa
