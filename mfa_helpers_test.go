package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/uptrace/bun/driver/pgdriver"
	"github.com/uptrace/bun/driver/sqliteshim"
)

// mfaStep is the TOTP period of every code in these tests (the server's).
const mfaStep = 30 * time.Second

// mfaClock is the services' clock in the MFA tests. It stands still until a
// test moves it, so a code computed for a moment is checked at that very
// moment however long the requests take: skew and replay are tested to the
// step, never by luck.
type mfaClock struct{ unixNano atomic.Int64 }

// newMFAClock starts 10 s into the current 30 s step.
func newMFAClock() *mfaClock {
	c := &mfaClock{}
	now := time.Now().Unix()
	c.unixNano.Store(time.Unix(now-now%30+10, 0).UnixNano())
	return c
}

func (c *mfaClock) now() time.Time          { return time.Unix(0, c.unixNano.Load()) }
func (c *mfaClock) advance(d time.Duration) { c.unixNano.Add(int64(d)) }

// mfaEnv is one server as an MFA test talks to it: every response body is
// kept, with every secret the test learnt, so that the test fails when a
// response shows a secret it should not (see mfaLog.check).
type mfaEnv struct {
	s     *testServer
	clock *mfaClock
	dsn   string
	log   *mfaLog
}

// mfaLog is what the servers of one test answered and the secrets they must
// not show.
type mfaLog struct {
	mu      sync.Mutex
	bodies  []mfaBody
	needles []string
}

type mfaBody struct {
	what string
	body []byte
}

// mfaShowsSecrets names the answers that exist to show a secret once:
// setupTotp's secret and URL, generateLookupSecrets' codes.
var mfaShowsSecrets = []string{"setupTotp", "generateLookupSecrets"}

func (l *mfaLog) add(what string, body []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bodies = append(l.bodies, mfaBody{what, body})
}

// secret adds values no response but the one that made them may contain.
func (l *mfaLog) secret(values ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range values {
		if v != "" {
			l.needles = append(l.needles, v)
		}
	}
}

// check fails the test for every response that shows a secret.
func (l *mfaLog) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.bodies {
		if slices.Contains(mfaShowsSecrets, b.what) {
			continue
		}
		low := bytes.ToLower(b.body)
		for _, n := range l.needles {
			if bytes.Contains(low, []byte(strings.ToLower(n))) {
				t.Errorf("the %s response shows the secret %q: %s", b.what, n, b.body)
			}
		}
	}
}

// mfaEach runs fn on a fresh server per database (eachSelfService: the
// person schema, then change), with an mfaClock of its own, and checks
// afterwards that no response showed a secret.
func mfaEach(t *testing.T, change func(*Config), fn func(t *testing.T, e *mfaEnv)) {
	t.Helper()
	var clock *mfaClock
	eachSelfService(t, func(c *Config) {
		clock = newMFAClock()
		c.now = clock.now
		if change != nil {
			change(c)
		}
	}, func(t *testing.T, s *testServer, dsn string) {
		e := &mfaEnv{s: s, clock: clock, dsn: dsn, log: &mfaLog{}}
		t.Cleanup(func() { e.log.check(t) })
		fn(t, e)
	})
}

// on is e talking to another server (same clock, same log).
func (e *mfaEnv) on(s *testServer) *mfaEnv {
	return &mfaEnv{s: s, clock: e.clock, dsn: e.dsn, log: e.log}
}

// Selections the MFA tests read.
const (
	mfaIdentityFields = `id availableAal secondFactors { totp totpSetUpAt lookupSecretsRemaining lookupSecretsGeneratedAt }`
	mfaSessionFields  = `id aal authenticatedAt authenticationMethods { method aal completedAt } identity { ` + mfaIdentityFields + ` }`
	mfaUserErrors     = `userErrors { code message path }`
	mfaAuthFields     = `session { ` + mfaSessionFields + ` } sessionToken ` + mfaUserErrors
	mfaIdentPayload   = `identity { ` + mfaIdentityFields + ` } ` + mfaUserErrors
	mfaAdminIdentity  = mfaIdentityFields + ` credentials { type identifiers createdAt }`

	mfaRegisterQuery     = `mutation($in: RegisterInput!) { register(input: $in) { ` + mfaAuthFields + ` } }`
	mfaLoginQuery        = `mutation($in: LoginInput!) { login(input: $in) { ` + mfaAuthFields + ` } }`
	mfaWhoamiQuery       = `{ whoami { ` + mfaSessionFields + ` } }`
	mfaSecondFactorQuery = `mutation($in: LoginSecondFactorInput!) { loginSecondFactor(input: $in) { ` + mfaAuthFields + ` } }`
	mfaSetupTotpQuery    = `mutation { setupTotp { secret uri qrCodePng ` + mfaUserErrors + ` } }`
	mfaConfirmTotpQuery  = `mutation($code: String!) { confirmTotp(code: $code) { ` + mfaIdentPayload + ` } }`
	mfaRemoveTotpQuery   = `mutation { removeTotp { ` + mfaIdentPayload + ` } }`
	mfaGenerateQuery     = `mutation { generateLookupSecrets { codes ` + mfaUserErrors + ` } }`
	mfaRemoveLookupQuery = `mutation { removeLookupSecrets { ` + mfaIdentPayload + ` } }`
	mfaLogoutQuery       = `mutation { logout { userErrors { code } } }`
	mfaAdminIdentityQ    = `query($id: UUID!) { identity(id: $id) { ` + mfaAdminIdentity + ` } }`
	mfaDeleteCredQuery   = `mutation($id: UUID!, $type: CredentialType!) { deleteIdentityCredential(identityId: $id, type: $type) { identity { ` + mfaAdminIdentity + ` } ` + mfaUserErrors + ` } }`
	mfaCreateQuery       = `mutation($in: CreateIdentityInput!) { createIdentity(input: $in) { identity { ` + mfaAdminIdentity + ` } ` + mfaUserErrors + ` } }`
)

type mfaSecondFactors struct {
	TOTP                     bool       `json:"totp"`
	TOTPSetUpAt              *time.Time `json:"totpSetUpAt"`
	LookupSecretsRemaining   *int       `json:"lookupSecretsRemaining"`
	LookupSecretsGeneratedAt *time.Time `json:"lookupSecretsGeneratedAt"`
}

type mfaCredential struct {
	Type        string   `json:"type"`
	Identifiers []string `json:"identifiers"`
}

type mfaIdentity struct {
	ID            string           `json:"id"`
	AvailableAAL  string           `json:"availableAal"`
	SecondFactors mfaSecondFactors `json:"secondFactors"`
	Credentials   []mfaCredential  `json:"credentials"`
}

// types lists the identity's credential types, sorted.
func (i *mfaIdentity) types() []string {
	var out []string
	for _, c := range i.Credentials {
		out = append(out, c.Type)
	}
	slices.Sort(out)
	return out
}

type mfaSession struct {
	ID                    string          `json:"id"`
	AAL                   string          `json:"aal"`
	AuthenticatedAt       time.Time       `json:"authenticatedAt"`
	AuthenticationMethods []authMethodOut `json:"authenticationMethods"`
	Identity              mfaIdentity     `json:"identity"`
}

type mfaAuthOut struct {
	Session      *mfaSession `json:"session"`
	SessionToken *string     `json:"sessionToken"`
	UserErrors   []userError `json:"userErrors"`
}

type mfaIdentityOut struct {
	Identity   *mfaIdentity `json:"identity"`
	UserErrors []userError  `json:"userErrors"`
}

type mfaTotpSetupOut struct {
	Secret     *string     `json:"secret"`
	URI        *string     `json:"uri"`
	QRCodePng  *string     `json:"qrCodePng"`
	UserErrors []userError `json:"userErrors"`
}

type mfaLookupOut struct {
	Codes      []string    `json:"codes"`
	UserErrors []userError `json:"userErrors"`
}

// call posts query with the bearer token (none when empty) and logs the
// answer under what (the field's name).
func (e *mfaEnv) call(t *testing.T, what, token, query string, vars map[string]any) *exchange {
	t.Helper()
	x := e.s.post(t, reqOpts{token: token}, query, vars)
	e.log.add(what, x.Body)
	return x
}

// admin is call with the admin key, failing on any top-level error.
func (e *mfaEnv) admin(t *testing.T, what, query string, vars map[string]any) *exchange {
	t.Helper()
	x := e.call(t, what, testAdminKey, query, vars)
	if len(x.Errors) > 0 {
		t.Fatalf("admin %s: %+v", what, x.Errors)
	}
	return x
}

// mfaNoTopLevel fails the test when x has a top-level error.
func mfaNoTopLevel(t *testing.T, what string, x *exchange) {
	t.Helper()
	if len(x.Errors) > 0 {
		t.Fatalf("%s: top-level errors %+v (data %s)", what, x.Errors, x.Data)
	}
}

// mfaWantTopLevel asserts that x failed with exactly the top-level error code
// and that data.<name> is null (or data is, for a non-null field).
func mfaWantTopLevel(t *testing.T, what string, x *exchange, name, code string) {
	t.Helper()
	if got := x.codes(); len(got) != 1 || got[0] != code {
		t.Errorf("%s: top-level codes %v (data %s), want [%s]", what, got, x.Data, code)
	}
	var m map[string]json.RawMessage
	if len(x.Data) > 0 {
		if err := json.Unmarshal(x.Data, &m); err != nil {
			t.Fatalf("%s: data %s: %v", what, x.Data, err)
		}
	}
	if v, ok := m[name]; ok && string(v) != "null" {
		t.Errorf("%s: data.%s is %s, want null", what, name, v)
	}
}

// mfaWantUserErrors asserts the userErrors as CODE@path.
func mfaWantUserErrors(t *testing.T, what string, got []userError, want ...string) {
	t.Helper()
	if g := codePaths(got); !slices.Equal(g, want) {
		t.Errorf("%s: userErrors %v, want %v", what, g, want)
	}
}

// mfaWantCodes asserts the userErrors' codes, whatever their paths.
func mfaWantCodes(t *testing.T, what string, got []userError, want ...string) {
	t.Helper()
	var codes []string
	for _, e := range got {
		codes = append(codes, e.Code)
	}
	if !slices.Equal(codes, want) {
		t.Errorf("%s: userErrors %v, want codes %v", what, codePaths(got), want)
	}
}

// register signs email up (default schema, pw1): token and identity id.
func (e *mfaEnv) register(t *testing.T, email string) (token, id string) {
	t.Helper()
	x := e.call(t, "register", "", mfaRegisterQuery, map[string]any{"in": map[string]any{
		"traits": map[string]any{"email": email}, "password": pw1,
	}})
	mfaNoTopLevel(t, "register", x)
	out := field[mfaAuthOut](t, x.gqlResponse, "register")
	if len(out.UserErrors) > 0 || out.SessionToken == nil || out.Session == nil {
		t.Fatalf("register %s: %s", email, x.Body)
	}
	if out.Session.AAL != "AAL1" || out.Session.Identity.AvailableAAL != "AAL1" {
		t.Errorf("register %s: session aal %s, identity availableAal %s, want AAL1 and AAL1", email, out.Session.AAL, out.Session.Identity.AvailableAAL)
	}
	return *out.SessionToken, out.Session.Identity.ID
}

// login signs in with a password (pw1); the new session is always AAL1.
func (e *mfaEnv) login(t *testing.T, email string) (string, *mfaSession) {
	t.Helper()
	x := e.call(t, "login", "", mfaLoginQuery, map[string]any{"in": map[string]any{"identifier": email, "password": pw1}})
	mfaNoTopLevel(t, "login", x)
	out := field[mfaAuthOut](t, x.gqlResponse, "login")
	if len(out.UserErrors) > 0 || out.SessionToken == nil || out.Session == nil {
		t.Fatalf("login %s: %s", email, x.Body)
	}
	if got := methodNames(out.Session.AuthenticationMethods); out.Session.AAL != "AAL1" || !slices.Equal(got, []string{"PASSWORD/AAL1"}) {
		t.Errorf("login %s: session aal %s methods %v, want AAL1 [PASSWORD/AAL1]", email, out.Session.AAL, got)
	}
	return *out.SessionToken, out.Session
}

// whoamiRaw asks whoami and returns the answer as it is.
func (e *mfaEnv) whoamiRaw(t *testing.T, token string) *exchange {
	t.Helper()
	return e.call(t, "whoami", token, mfaWhoamiQuery, nil)
}

// whoami returns the caller's session, failing on any error.
func (e *mfaEnv) whoami(t *testing.T, token string) *mfaSession {
	t.Helper()
	x := e.whoamiRaw(t, token)
	mfaNoTopLevel(t, "whoami", x)
	s := field[*mfaSession](t, x.gqlResponse, "whoami")
	if s == nil {
		t.Fatalf("whoami: null session")
	}
	return s
}

// wantAAL2Required asserts that token's session is refused by whoami with
// SESSION_AAL2_REQUIRED.
func (e *mfaEnv) wantAAL2Required(t *testing.T, why, token string) {
	t.Helper()
	mfaWantTopLevel(t, why+": whoami", e.whoamiRaw(t, token), "whoami", "SESSION_AAL2_REQUIRED")
}

// wantUnauthenticated asserts that token no longer proves a session.
func (e *mfaEnv) wantUnauthenticated(t *testing.T, why, token string) {
	t.Helper()
	mfaWantTopLevel(t, why+": whoami", e.whoamiRaw(t, token), "whoami", "UNAUTHENTICATED")
}

// setupTotpRaw calls setupTotp; the secrets it shows are remembered.
func (e *mfaEnv) setupTotpRaw(t *testing.T, token string) *exchange {
	t.Helper()
	x := e.call(t, "setupTotp", token, mfaSetupTotpQuery, nil)
	if len(x.Errors) == 0 {
		out := field[mfaTotpSetupOut](t, x.gqlResponse, "setupTotp")
		if out.Secret != nil {
			e.log.secret(mfaSecretForms(*out.Secret)...)
		}
		if out.URI != nil {
			e.log.secret(*out.URI)
		}
	}
	return x
}

// setupTotp starts a TOTP setup, failing unless it succeeds.
func (e *mfaEnv) setupTotp(t *testing.T, token string) mfaTotpSetupOut {
	t.Helper()
	x := e.setupTotpRaw(t, token)
	mfaNoTopLevel(t, "setupTotp", x)
	out := field[mfaTotpSetupOut](t, x.gqlResponse, "setupTotp")
	if len(out.UserErrors) > 0 || out.Secret == nil || out.URI == nil || out.QRCodePng == nil {
		t.Fatalf("setupTotp: %s", x.Body)
	}
	return out
}

// confirmTotp confirms with code, failing on a top-level error only.
func (e *mfaEnv) confirmTotp(t *testing.T, token, code string) mfaIdentityOut {
	t.Helper()
	e.log.secret(`"` + code + `"`)
	x := e.call(t, "confirmTotp", token, mfaConfirmTotpQuery, map[string]any{"code": code})
	mfaNoTopLevel(t, "confirmTotp", x)
	return field[mfaIdentityOut](t, x.gqlResponse, "confirmTotp")
}

// enroll sets TOTP up and confirms it at the clock's now: the secret.
func (e *mfaEnv) enroll(t *testing.T, token string) string {
	t.Helper()
	secret := *e.setupTotp(t, token).Secret
	out := e.confirmTotp(t, token, e.code(t, secret, 0))
	if len(out.UserErrors) > 0 || out.Identity == nil || !out.Identity.SecondFactors.TOTP {
		t.Fatalf("confirmTotp with the right code: %+v", out)
	}
	return secret
}

// secondFactorRaw calls loginSecondFactor with in as it is.
func (e *mfaEnv) secondFactorRaw(t *testing.T, token string, in map[string]any) *exchange {
	t.Helper()
	for _, v := range in {
		if s, ok := v.(string); ok {
			e.log.secret(`"` + s + `"`)
		}
	}
	return e.call(t, "loginSecondFactor", token, mfaSecondFactorQuery, map[string]any{"in": in})
}

// secondFactor calls loginSecondFactor, failing on a top-level error.
func (e *mfaEnv) secondFactor(t *testing.T, token string, in map[string]any) mfaAuthOut {
	t.Helper()
	x := e.secondFactorRaw(t, token, in)
	mfaNoTopLevel(t, "loginSecondFactor", x)
	return field[mfaAuthOut](t, x.gqlResponse, "loginSecondFactor")
}

// lift finishes signing in with in, failing unless the session is AAL2 then.
func (e *mfaEnv) lift(t *testing.T, token string, in map[string]any) *mfaSession {
	t.Helper()
	out := e.secondFactor(t, token, in)
	if len(out.UserErrors) > 0 || out.Session == nil {
		t.Fatalf("loginSecondFactor(%v): userErrors %v session %v", in, codePaths(out.UserErrors), out.Session)
	}
	if out.Session.AAL != "AAL2" {
		t.Errorf("loginSecondFactor(%v): session aal %s, want AAL2", in, out.Session.AAL)
	}
	return out.Session
}

// wantInvalidCode asserts that loginSecondFactor refuses in with
// INVALID_CODE at path and leaves token's session as it was (at AAL1).
func (e *mfaEnv) wantInvalidCode(t *testing.T, why, token string, in map[string]any, path string) {
	t.Helper()
	out := e.secondFactor(t, token, in)
	mfaWantUserErrors(t, why, out.UserErrors, "INVALID_CODE@"+path)
	if out.Session != nil || out.SessionToken != nil {
		t.Errorf("%s: refused, yet answered a session: %+v", why, out.Session)
	}
}

// generateLookupRaw calls generateLookupSecrets; the codes it shows are
// remembered.
func (e *mfaEnv) generateLookupRaw(t *testing.T, token string) *exchange {
	t.Helper()
	x := e.call(t, "generateLookupSecrets", token, mfaGenerateQuery, nil)
	if len(x.Errors) == 0 {
		for _, c := range field[mfaLookupOut](t, x.gqlResponse, "generateLookupSecrets").Codes {
			e.log.secret(mfaLookupForms(c)...)
		}
	}
	return x
}

// generateLookup makes lookup secrets, failing unless it succeeds.
func (e *mfaEnv) generateLookup(t *testing.T, token string) []string {
	t.Helper()
	x := e.generateLookupRaw(t, token)
	mfaNoTopLevel(t, "generateLookupSecrets", x)
	out := field[mfaLookupOut](t, x.gqlResponse, "generateLookupSecrets")
	if len(out.UserErrors) > 0 || out.Codes == nil {
		t.Fatalf("generateLookupSecrets: %s", x.Body)
	}
	return out.Codes
}

// identityMutation calls one of the IdentityPayload mutations of the
// caller's own (removeTotp, removeLookupSecrets) and returns the answer.
func (e *mfaEnv) identityMutation(t *testing.T, what, token, query string) *exchange {
	t.Helper()
	return e.call(t, what, token, query, nil)
}

// mfaIdentityPayload decodes data.<what> of an IdentityPayload answer, failing
// on a top-level error.
func mfaIdentityPayload(t *testing.T, what string, x *exchange) mfaIdentityOut {
	t.Helper()
	mfaNoTopLevel(t, what, x)
	return field[mfaIdentityOut](t, x.gqlResponse, what)
}

// adminIdentity reads an identity as an admin.
func (e *mfaEnv) adminIdentity(t *testing.T, id string) *mfaIdentity {
	t.Helper()
	x := e.admin(t, "identity", mfaAdminIdentityQ, map[string]any{"id": id})
	got := field[*mfaIdentity](t, x.gqlResponse, "identity")
	if got == nil {
		t.Fatalf("identity %s: null", id)
	}
	return got
}

// deleteCredential removes an identity's credential as an admin.
func (e *mfaEnv) deleteCredential(t *testing.T, id, typ string) mfaIdentityOut {
	t.Helper()
	x := e.admin(t, "deleteIdentityCredential", mfaDeleteCredQuery, map[string]any{"id": id, "type": typ})
	return field[mfaIdentityOut](t, x.gqlResponse, "deleteIdentityCredential")
}

// createIdentity creates an identity as an admin.
func (e *mfaEnv) createIdentity(t *testing.T, in map[string]any) mfaIdentityOut {
	t.Helper()
	x := e.admin(t, "createIdentity", mfaCreateQuery, map[string]any{"in": in})
	return field[mfaIdentityOut](t, x.gqlResponse, "createIdentity")
}

// mfaCode is the TOTP code of secret at a moment (SHA1, 6 digits, 30 s).
func mfaCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatalf("compute a TOTP code: %v", err)
	}
	return code
}

// code is the TOTP code of secret at the server's now plus offset.
func (e *mfaEnv) code(t *testing.T, secret string, offset time.Duration) string {
	t.Helper()
	return mfaCode(t, secret, e.clock.now().Add(offset))
}

// wrongCode is a code that no step near now accepts.
func (e *mfaEnv) wrongCode(t *testing.T, secret string) string {
	t.Helper()
	near := map[string]bool{}
	for i := -3; i <= 3; i++ {
		near[e.code(t, secret, time.Duration(i)*mfaStep)] = true
	}
	for n := 0; ; n++ {
		if c := fmt.Sprintf("%06d", (271828+n*314159)%1000000); !near[c] {
			return c
		}
	}
}

// mfaSecretKey decodes a base32 TOTP secret (any case, padded or not).
func mfaSecretKey(secret string) ([]byte, error) {
	return base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.TrimRight(strings.ToUpper(strings.TrimSpace(secret)), "="))
}

// mfaSecretForms is how a TOTP secret could show up: as given, unpadded,
// and its key in hex and base64.
func mfaSecretForms(secret string) []string {
	out := []string{secret, strings.TrimRight(secret, "=")}
	if key, err := mfaSecretKey(secret); err == nil && len(key) > 0 {
		out = append(out, hex.EncodeToString(key), base64.StdEncoding.EncodeToString(key),
			base64.RawStdEncoding.EncodeToString(key), base64.RawURLEncoding.EncodeToString(key))
	}
	return out
}

// mfaLookupForms is how a lookup code could show up: as given and without
// its separators.
func mfaLookupForms(code string) []string {
	bare := strings.NewReplacer("-", "", " ", "").Replace(code)
	return []string{code, bare}
}

// mfaDatabaseBytes is everything the database holds, as far as a thief
// with a copy of it can read: the SQLite file and its WAL byte for byte, or
// every row of every PostgreSQL table as text.
func mfaDatabaseBytes(t *testing.T, dsn string) []byte {
	t.Helper()
	if file, ok := strings.CutPrefix(dsn, "sqlite://"); ok {
		var out []byte
		for _, f := range []string{file, file + "-wal"} {
			b, err := os.ReadFile(f)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			out = append(out, b...)
		}
		return out
	}
	sqldb := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dsn)))
	defer sqldb.Close()
	ctx := context.Background()
	rows, err := sqldb.QueryContext(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if len(tables) == 0 {
		t.Fatal("no tables in the database")
	}
	var out bytes.Buffer
	for _, name := range tables {
		var text sql.NullString
		if err := sqldb.QueryRowContext(ctx, fmt.Sprintf(`SELECT string_agg(t::text, E'\n') FROM %q AS t`, name)).Scan(&text); err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		out.WriteString(text.String)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// mfaCredentialConfigs reads identity_credentials.config by type (lower
// case), for the one identity of the database that has rows of that type.
func mfaCredentialConfigs(t *testing.T, dsn, identityID string) map[string][]byte {
	t.Helper()
	var sqldb *sql.DB
	if file, ok := strings.CutPrefix(dsn, "sqlite://"); ok {
		var err error
		if sqldb, err = sql.Open(sqliteshim.ShimName, "file:"+file+"?_pragma=busy_timeout(10000)"); err != nil {
			t.Fatal(err)
		}
	} else {
		sqldb = sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dsn)))
	}
	defer sqldb.Close()
	// The id is the server's own UUID, safe to splice in; placeholders
	// differ between the two drivers.
	rows, err := sqldb.QueryContext(context.Background(), fmt.Sprintf(
		`SELECT type, config FROM identity_credentials WHERE LOWER(CAST(identity_id AS TEXT)) = '%s'`, strings.ToLower(identityID)))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var typ string
		var config []byte
		if err := rows.Scan(&typ, &config); err != nil {
			t.Fatal(err)
		}
		out[strings.ToLower(typ)] = config
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// mfaRetryAfter is extensions.retryAfterSeconds of the first error, or 0.
func mfaRetryAfter(x *exchange) int {
	if len(x.Errors) == 0 {
		return 0
	}
	switch v := x.Errors[0].Extensions["retryAfterSeconds"].(type) {
	case json.Number:
		n, _ := strconv.Atoi(v.String())
		return n
	case float64:
		return int(v)
	}
	return 0
}

// mfaNear reports whether a and b are within a second of each other (the
// databases keep microseconds at best).
func mfaNear(a, b time.Time) bool {
	d := a.Sub(b)
	return d > -time.Second && d < time.Second
}
