// Package password hashes new passwords with argon2id, compares passwords with
// stored or imported hashes in the formats Ory Kratos writes and accepts on
// import (argon2id, argon2i, bcrypt, pbkdf2, scrypt, Firebase scrypt, the
// crypt(3) family md5-crypt, sha256-crypt and sha512-crypt, salted SHA-1,
// SHA-256 and SHA-512 with Kratos's pf= patterns, LDAP's SSHA, MD5 and the
// HMAC family), and checks new passwords against a policy (length,
// similarity to the identifiers, commonly used passwords).
//
// The kinds are a table in compare.go, one entry each (how it is recognised,
// parsed and bounded; its parsed form compares), with the parsers in one file
// per family. Imported kinds are verify-only: the first successful login
// replaces them with a current argon2id hash (NeedsRehash).
//
// Imported hashes are held to bounds on the memory and CPU one comparison may
// cost (see the limits in compare.go), at import and again at every
// comparison. A failed comparison takes at least as long as one with the
// current parameters, which is what an unknown identifier costs, so that a
// wrong password tells neither that an account's hash was imported with
// cheaper parameters nor that the identifier exists.
//
// Nothing in this package puts a password or a hash into an error message or
// a log line: messages name the algorithm and the rule that failed, never the
// input, because errors travel to logs and to clients.
package password
