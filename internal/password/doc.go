// Package password hashes new passwords with argon2id, compares passwords with
// stored or imported hashes in the formats Ory Kratos writes and accepts
// (argon2id, argon2i, bcrypt, pbkdf2, scrypt), and checks new passwords
// against a policy (length, similarity to the identifiers, commonly used
// passwords).
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
