package main

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/scrypt"

	"github.com/identityd/identityd/model"
)

// Regression tests for a security review of imported password hashes: an
// imported scrypt hash with p = 2^30-1 was accepted, and any login to its
// identity then crashed the process (x/crypto allocates 128·r·p bytes up
// front, 128 GiB). Every kind's parameters are now bounded at import and
// again at comparison; internal/password has the unit and fuzz tests.

const (
	hardeningCreate = `mutation($in: CreateIdentityInput!) { createIdentity(input: $in) { identity { id } userErrors { code message path } } }`
	hardeningImport = `mutation($in: [CreateIdentityInput!]!) { importIdentities(input: $in) { results { index identity { id } userErrors { code message path } } } }`
	hardeningLogin  = `mutation($in: LoginInput!) { login(input: $in) { sessionToken userErrors { code message path } } }`
	hardeningPath   = "/credentials/password/hashedPassword"
	hardeningSalt   = "MDEyMzQ1Njc4OWFiY2RlZg"                      // 16 bytes
	hardeningKey    = "6g3umF+uVrJsObaTZhIbbTlgrvOEFcCItdwSjtPF67M" // 32 bytes
)

type hardeningUserError struct {
	Code    string
	Message string
	Path    *string
}

type hardeningPayload struct {
	Identity   *struct{ ID string }
	UserErrors []hardeningUserError
}

// hardeningField decodes the data field name of r into v.
func hardeningField(t *testing.T, r *gqlResponse, name string, v any) {
	t.Helper()
	var m map[string]json.RawMessage
	r.decode(t, &m)
	if err := json.Unmarshal(m[name], v); err != nil {
		t.Fatalf("decode %s from %s: %v", name, r.Data, err)
	}
}

// hardeningImportHash imports an identity with hash through createIdentity.
func hardeningImportHash(t *testing.T, s *testServer, email, hash string) hardeningPayload {
	t.Helper()
	var out hardeningPayload
	hardeningField(t, s.admin(t, hardeningCreate, map[string]any{"in": map[string]any{
		"traits":      map[string]any{"email": email},
		"credentials": map[string]any{"password": map[string]any{"hashedPassword": hash}},
	}}), "createIdentity", &out)
	return out
}

// hardeningLoginCode logs in and returns "" for a session, or the one
// userError's code.
func hardeningLoginCode(t *testing.T, s *testServer, identifier, password string) string {
	t.Helper()
	r := s.gql(t, "", hardeningLogin, map[string]any{"in": map[string]any{"identifier": identifier, "password": password}})
	if len(r.Errors) > 0 {
		t.Fatalf("login %s: %+v", identifier, r.Errors)
	}
	var out struct {
		SessionToken *string
		UserErrors   []hardeningUserError
	}
	hardeningField(t, r, "login", &out)
	switch {
	case out.SessionToken != nil && len(out.UserErrors) == 0:
		return ""
	case out.SessionToken == nil && len(out.UserErrors) == 1:
		return out.UserErrors[0].Code
	}
	t.Fatalf("login %s: token %v with userErrors %+v", identifier, out.SessionToken != nil, out.UserErrors)
	return ""
}

// wantRefusedHash checks that an import was refused at the hash's path with
// a message containing want, and that nothing was stored for email.
func wantRefusedHash(t *testing.T, s *testServer, name, email string, got hardeningPayload, want string) {
	t.Helper()
	if got.Identity != nil {
		t.Errorf("%s: imported as %s, want refused", name, got.Identity.ID)
	}
	errs := got.UserErrors
	if len(errs) != 1 || errs[0].Code != "VALIDATION_FAILED" || errs[0].Path == nil || *errs[0].Path != hardeningPath ||
		!strings.Contains(errs[0].Message, want) {
		t.Errorf("%s: userErrors %+v, want one VALIDATION_FAILED at %s containing %q", name, errs, hardeningPath, want)
	}
	if _, err := s.app.store.FindPasswordCredential(context.Background(), []string{email}); model.ErrorCodeOf(err) != model.CodeNotFound {
		t.Errorf("%s: the refused hash was stored for %s (lookup: %v)", name, email, err)
	}
}

// TestHashHardeningImportRefusesCostlyHashes: the review's scrypt hash and,
// for every kind, a parameter set past its bound are refused at import, by
// createIdentity and by importIdentities alike, and nothing is stored.
func TestHashHardeningImportRefusesCostlyHashes(t *testing.T) {
	refused := []struct{ name, hash, want string }{
		{"scrypt p=2^30-1 (the review's)", "$scrypt$ln=2,r=1,p=1073741823$" + hardeningSalt + "$" + hardeningKey, "malformed scrypt password hash: memory"},
		{"scrypt work", "$scrypt$ln=1048576,r=8,p=2$" + hardeningSalt + "$" + hardeningKey, "malformed scrypt password hash: work"},
		{"argon2id memory", "$argon2id$v=19$m=2097152,t=1,p=1$" + hardeningSalt + "$" + hardeningKey, "malformed argon2id password hash: memory (m)"},
		{"argon2id lanes", "$argon2id$v=19$m=65536,t=1,p=256$" + hardeningSalt + "$" + hardeningKey, "parallelism (p) of 256 is outside 1 to 255"},
		{"argon2i work", "$argon2i$v=19$m=1048576,t=5,p=1$" + hardeningSalt + "$" + hardeningKey, "memory × iterations"},
		{"bcrypt cost 17", "$2b$17$o6hx.Wog/wvFSkT/Bp/6DOxCtLRTDj7lm9on9suF/WaCGNVHbkfL6", "malformed bcrypt password hash: cost 17"},
		{"pbkdf2-sha512 work", "$pbkdf2-sha512$i=5000001,l=32$" + hardeningSalt + "$" + hardeningKey, "malformed pbkdf2 password hash: work of 10000002"},
	}
	eachServer(t, func(t *testing.T, s *testServer) {
		for i, c := range refused {
			email := fmt.Sprintf("refused%d@example.com", i)
			wantRefusedHash(t, s, c.name, email, hardeningImportHash(t, s, email, c.hash), c.want)
		}

		// importIdentities: the hostile item is refused on its own, the
		// valid one beside it is stored.
		var out struct {
			Results []struct {
				Index      int
				Identity   *struct{ ID string }
				UserErrors []hardeningUserError
			}
		}
		hardeningField(t, s.admin(t, hardeningImport, map[string]any{"in": []any{
			map[string]any{"traits": map[string]any{"email": "bulk-hostile@example.com"},
				"credentials": map[string]any{"password": map[string]any{"hashedPassword": refused[0].hash}}},
			map[string]any{"traits": map[string]any{"email": "bulk-fine@example.com"}},
		}}), "importIdentities", &out)
		if len(out.Results) != 2 {
			t.Fatalf("import of 2: %d results", len(out.Results))
		}
		res := out.Results[0]
		wantRefusedHash(t, s, "importIdentities, scrypt p=2^30-1", "bulk-hostile@example.com",
			hardeningPayload{Identity: res.Identity, UserErrors: res.UserErrors}, "malformed scrypt password hash: memory")
		if out.Results[1].Identity == nil {
			t.Errorf("the valid item beside the hostile one was refused: %+v", out.Results[1].UserErrors)
		}

		// A login to the refused identifiers is an unknown identifier, not a
		// crash. (Only tried when the import was refused: against the old
		// code a login to the stored hash would kill the test binary.)
		for i := range refused {
			email := fmt.Sprintf("refused%d@example.com", i)
			if _, err := s.app.store.FindPasswordCredential(context.Background(), []string{email}); model.ErrorCodeOf(err) != model.CodeNotFound {
				continue
			}
			if code := hardeningLoginCode(t, s, email, "whatever it was"); code != "INVALID_CREDENTIALS" {
				t.Errorf("login to refused %s: %q, want INVALID_CREDENTIALS", email, code)
			}
		}
	})
}

// TestHashHardeningImportedHashesWithinLimitsLogIn: hashes whose parameters
// are unusual but within the bounds (scrypt with many passes, argon2 with 16
// lanes) import and sign in, and a wrong password is still refused.
func TestHashHardeningImportedHashesWithinLimitsLogIn(t *testing.T) {
	const pw = "correct horse battery"
	salt := []byte("0123456789abcdef")
	b64, std := base64.RawStdEncoding.EncodeToString, base64.StdEncoding.EncodeToString
	sc, err := scrypt.Key([]byte(pw), salt, 16, 1, 64, 32)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := pbkdf2.Key(sha512.New, pw, salt, 1000, 32)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	hashes := []struct{ name, hash string }{
		{"scrypt N=16, r=1, p=64", "$scrypt$ln=16,r=1,p=64$" + std(salt) + "$" + std(sc)},
		{"argon2id 16 lanes", "$argon2id$v=19$m=128,t=1,p=16$" + b64(salt) + "$" + b64(argon2.IDKey([]byte(pw), salt, 1, 128, 16, 32))},
		{"pbkdf2-sha512", "$pbkdf2-sha512$i=1000,l=32$" + b64(salt) + "$" + b64(pb)},
		{"bcrypt", string(bc)},
	}
	eachServer(t, func(t *testing.T, s *testServer) {
		for i, c := range hashes {
			email := fmt.Sprintf("within%d@example.com", i)
			if got := hardeningImportHash(t, s, email, c.hash); got.Identity == nil {
				t.Errorf("%s: refused: %+v", c.name, got.UserErrors)
				continue
			}
			if code := hardeningLoginCode(t, s, email, pw+"!"); code != "INVALID_CREDENTIALS" {
				t.Errorf("%s: login with a wrong password: %q, want INVALID_CREDENTIALS", c.name, code)
			}
			if code := hardeningLoginCode(t, s, email, pw); code != "" {
				t.Errorf("%s: login: %q, want a session", c.name, code)
			}
		}
	})
}
