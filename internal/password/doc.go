// Package password hashes new passwords with argon2id, compares passwords with
// stored or imported hashes in the formats Ory Kratos writes and accepts
// (argon2id, argon2i, bcrypt, pbkdf2, scrypt), and checks new passwords
// against a policy (length, similarity to the identifiers, commonly used
// passwords).
//
// Nothing in this package puts a password or a hash into an error message or
// a log line: messages name the algorithm and the rule that failed, never the
// input, because errors travel to logs and to clients.
package password
