package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/internal/browsertest"
)

// passkeyPageScript is what a browser app needs to use the passkey
// mutations: the options come as JSON with binary fields base64url, and
// navigator.credentials wants ArrayBuffers; the answer goes back as JSON.
// README.md shows the same script (apiPlaceholder is replaced by the test
// server's URL).
const passkeyPageScript = `const b64url = {
  decode: (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(s.length / 4) * 4, "=")), (c) => c.charCodeAt(0)).buffer,
  encode: (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""),
};
const withIds = (list) => (list || []).map((c) => ({ ...c, id: b64url.decode(c.id) }));
// PublicKeyCredential.toJSON() where the browser has it, the same by hand where not.
function credentialJSON(c) {
  if (typeof c.toJSON === "function") return c.toJSON();
  const r = c.response;
  const response = { clientDataJSON: b64url.encode(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = b64url.encode(r.attestationObject);
    response.transports = r.getTransports ? r.getTransports() : [];
  } else {
    response.authenticatorData = b64url.encode(r.authenticatorData);
    response.signature = b64url.encode(r.signature);
    if (r.userHandle) response.userHandle = b64url.encode(r.userHandle);
  }
  return { id: c.id, rawId: b64url.encode(c.rawId), type: c.type, authenticatorAttachment: c.authenticatorAttachment,
    clientExtensionResults: c.getClientExtensionResults(), response };
}
// options: beginPasskeyRegistration's options; resolves to finishPasskeyRegistration's credential.
async function createPasskey(options) {
  const publicKey = { ...options, challenge: b64url.decode(options.challenge),
    user: { ...options.user, id: b64url.decode(options.user.id) }, excludeCredentials: withIds(options.excludeCredentials) };
  return credentialJSON(await navigator.credentials.create({ publicKey }));
}
// options: beginPasskeyLogin's options; resolves to finishPasskeyLogin's credential.
async function getPasskey(options) {
  const publicKey = { ...options, challenge: b64url.decode(options.challenge), allowCredentials: withIds(options.allowCredentials) };
  return credentialJSON(await navigator.credentials.get({ publicKey }));
}

// GraphQL over fetch with the session cookie (serve.cors must allow this origin when the API is
// elsewhere). A mutation the cookie authenticates carries the csrfToken of the sign-in.
const API = "https://id.example.com/graphql";
let csrfToken = sessionStorage.getItem("csrfToken");
async function gql(query, variables) {
  const headers = { "Content-Type": "application/json" };
  if (csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const r = await fetch(API, { method: "POST", credentials: "include", headers, body: JSON.stringify({ query, variables }) });
  const { data, errors } = await r.json();
  if (errors) throw new Error(errors[0].message);
  return data;
}

async function addPasskey(name) {  // in a signed-in page
  const { beginPasskeyRegistration: b } = await gql(` + "`" + `mutation { beginPasskeyRegistration { challengeId options userErrors { code message } } }` + "`" + `);
  if (b.userErrors.length) throw new Error(b.userErrors[0].message);
  const credential = await createPasskey(b.options);
  const { finishPasskeyRegistration: f } = await gql(
    ` + "`" + `mutation($in: FinishPasskeyRegistrationInput!) { finishPasskeyRegistration(input: $in) { identity { passkeys { id displayName } } userErrors { code message } } }` + "`" + `,
    { in: { challengeId: b.challengeId, credential, displayName: name } });
  if (f.userErrors.length) throw new Error(f.userErrors[0].message);
  return f.identity.passkeys;
}

async function signInWithPasskey(identifier) {  // identifier: optional
  const { beginPasskeyLogin: b } = await gql(
    ` + "`" + `mutation($in: BeginPasskeyLoginInput!) { beginPasskeyLogin(input: $in) { challengeId options userErrors { code message } } }` + "`" + `,
    { in: { identifier } });
  if (b.userErrors.length) throw new Error(b.userErrors[0].message);
  const credential = await getPasskey(b.options);
  const { finishPasskeyLogin: f } = await gql(
    ` + "`" + `mutation($in: FinishPasskeyLoginInput!) { finishPasskeyLogin(input: $in) { session { identity { id } } csrfToken userErrors { code message } } }` + "`" + `,
    { in: { challengeId: b.challengeId, credential, cookie: true } });
  if (f.userErrors.length) throw new Error(f.userErrors[0].message);
  csrfToken = f.csrfToken;
  sessionStorage.setItem("csrfToken", csrfToken);
  return f.session;
}
`

// passkeyBrowser is headless Chromium on a page of http://localhost:PORT (a
// secure context, so WebAuthn works without TLS), with a DevTools virtual
// authenticator: a platform authenticator (internal transport, CTAP 2.1)
// that keeps discoverable credentials and verifies its user.
type passkeyBrowser struct {
	t      *testing.T
	ctx    context.Context
	origin string
	auth   webauthn.AuthenticatorID
}

const apiPlaceholder = "https://id.example.com/graphql"

// passkeyPage serves the page the browser runs the ceremonies on and
// returns its origin, on localhost rather than 127.0.0.1: an IP address
// cannot be a relying party id. The page's script calls the API at *api
// (set it once the server runs).
func passkeyPage(t *testing.T, api *string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		script := passkeyPageScript
		if api != nil {
			script = strings.Replace(script, apiPlaceholder, *api, 1)
		}
		fmt.Fprintf(w, "<!doctype html><meta charset=utf-8><title>app</title><script>%s</script>", script)
	}))
	t.Cleanup(srv.Close)
	return localhostURL(srv.URL)
}

// localhostURL is a loopback test server's URL on localhost.
func localhostURL(u string) string { return strings.Replace(u, "127.0.0.1", "localhost", 1) }

func newPasskeyBrowser(t *testing.T, origin string) *passkeyBrowser {
	t.Helper()
	b := &passkeyBrowser{t: t, ctx: browsertest.New(t), origin: origin}
	err := chromedp.Do(b.ctx, chromedp.Navigate(origin), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		res, err := cdp.Call(ctx, tg, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
				Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
				IsUserVerified: true, AutomaticPresenceSimulation: true,
			}})
		b.auth = res.AuthenticatorID
		return err
	}))
	if err != nil {
		t.Fatalf("browser with a virtual authenticator: %v", err)
	}
	return b
}

// ceremony runs createPasskey or getPasskey with options and returns the
// credential JSON, or the browser's error ("InvalidStateError: …").
func (b *passkeyBrowser) ceremony(fn string, options json.RawMessage) (json.RawMessage, error) {
	b.t.Helper()
	js := fmt.Sprintf(`%s(%s).then(JSON.stringify).catch((e) => "error: " + e.name + ": " + e.message)`, fn, options)
	out, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: %v", fn, err)
	}
	if msg, ok := strings.CutPrefix(out, "error: "); ok {
		return nil, fmt.Errorf("%s", msg)
	}
	return json.RawMessage(out), nil
}

func (b *passkeyBrowser) create(options json.RawMessage) json.RawMessage {
	b.t.Helper()
	out, err := b.ceremony("createPasskey", options)
	if err != nil {
		b.t.Fatalf("navigator.credentials.create: %v", err)
	}
	return out
}

func (b *passkeyBrowser) get(options json.RawMessage) json.RawMessage {
	b.t.Helper()
	out, err := b.ceremony("getPasskey", options)
	if err != nil {
		b.t.Fatalf("navigator.credentials.get: %v", err)
	}
	return out
}

// devtools runs one WebAuthn domain command on the page.
func devtools[P, R any](b *passkeyBrowser, c cdp.Command[P, R], params P) R {
	b.t.Helper()
	out, err := chromedp.Run(b.ctx, func(ctx context.Context, tg *chromedp.Target) (R, error) {
		return cdp.Call(ctx, tg, c, params)
	})
	if err != nil {
		b.t.Fatalf("%s: %v", c.Method, err)
	}
	return out
}

const (
	pkErrFields   = `userErrors { code message path }`
	pkFields      = `passkeys { id displayName createdAt lastUsedAt }`
	pkBeginReg    = `mutation { beginPasskeyRegistration { challengeId options ` + pkErrFields + ` } }`
	pkFinishReg   = `mutation($in: FinishPasskeyRegistrationInput!) { finishPasskeyRegistration(input: $in) { identity { id ` + pkFields + ` } ` + pkErrFields + ` } }`
	pkBeginLogin  = `mutation($in: BeginPasskeyLoginInput!) { beginPasskeyLogin(input: $in) { challengeId options ` + pkErrFields + ` } }`
	pkFinishLogin = `mutation($in: FinishPasskeyLoginInput!) { finishPasskeyLogin(input: $in) { ` + authFields + ` } }`
	pkRemove      = `mutation($id: String!) { removePasskey(id: $id) { identity { id ` + pkFields + ` } ` + pkErrFields + ` } }`
	pkWhoami      = `{ whoami { identity { id ` + pkFields + ` } } }`
)

type pkChallengeOut struct {
	ChallengeID *string
	Options     json.RawMessage
	UserErrors  []userError
}

type pkPasskey struct {
	ID          string
	DisplayName *string
	CreatedAt   time.Time
	LastUsedAt  *time.Time
}

type pkIdentityOut struct {
	Identity *struct {
		ID       string
		Passkeys []pkPasskey
	}
	UserErrors []userError
}

// pkOptions is what the tests read of the options.
type pkOptions struct {
	Challenge string
	RP        struct{ ID, Name string }
	User      struct{ ID, Name, DisplayName string }
	Timeout   int
	RPID      string `json:"rpId"`
	Selection struct {
		ResidentKey      string
		UserVerification string
	} `json:"authenticatorSelection"`
	UserVerification   string
	ExcludeCredentials []struct{ ID, Type string }
	AllowCredentials   []struct {
		ID, Type   string
		Transports []string
	}
	Extensions map[string]any
}

func (s *testServer) pkBeginRegistration(t *testing.T, token string) pkChallengeOut {
	t.Helper()
	r := s.gql(t, token, pkBeginReg, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("beginPasskeyRegistration: %+v", r.Errors)
	}
	return field[pkChallengeOut](t, r, "beginPasskeyRegistration")
}

func (s *testServer) pkFinishRegistration(t *testing.T, token, challengeID string, credential json.RawMessage, name any) pkIdentityOut {
	t.Helper()
	r := s.gql(t, token, pkFinishReg, map[string]any{"in": map[string]any{"challengeId": challengeID, "credential": credential, "displayName": name}})
	if len(r.Errors) > 0 {
		t.Fatalf("finishPasskeyRegistration: %+v", r.Errors)
	}
	return field[pkIdentityOut](t, r, "finishPasskeyRegistration")
}

func (s *testServer) pkBeginLogin(t *testing.T, identifier any) pkChallengeOut {
	t.Helper()
	r := s.gql(t, "", pkBeginLogin, map[string]any{"in": map[string]any{"identifier": identifier}})
	if len(r.Errors) > 0 {
		t.Fatalf("beginPasskeyLogin: %+v", r.Errors)
	}
	out := field[pkChallengeOut](t, r, "beginPasskeyLogin")
	if len(out.UserErrors) > 0 || out.ChallengeID == nil {
		t.Fatalf("beginPasskeyLogin: %+v", out.UserErrors)
	}
	return out
}

func (s *testServer) pkFinishLogin(t *testing.T, challengeID string, credential json.RawMessage) authOut {
	t.Helper()
	r := s.gql(t, "", pkFinishLogin, map[string]any{"in": map[string]any{"challengeId": challengeID, "credential": credential}})
	if len(r.Errors) > 0 {
		t.Fatalf("finishPasskeyLogin: %+v", r.Errors)
	}
	return field[authOut](t, r, "finishPasskeyLogin")
}

// pkRegister registers a passkey for the session token and returns the
// identity's passkeys.
func (s *testServer) pkRegister(t *testing.T, b *passkeyBrowser, token, name string) []pkPasskey {
	t.Helper()
	ch := s.pkBeginRegistration(t, token)
	if len(ch.UserErrors) > 0 || ch.ChallengeID == nil {
		t.Fatalf("beginPasskeyRegistration: %+v", ch.UserErrors)
	}
	out := s.pkFinishRegistration(t, token, *ch.ChallengeID, b.create(ch.Options), name)
	if len(out.UserErrors) > 0 || out.Identity == nil {
		t.Fatalf("finishPasskeyRegistration: %+v", out.UserErrors)
	}
	return out.Identity.Passkeys
}

// pkSignIn signs in with a passkey (identifier nil: discoverable) and
// returns the answer.
func (s *testServer) pkSignIn(t *testing.T, b *passkeyBrowser, identifier any) authOut {
	t.Helper()
	ch := s.pkBeginLogin(t, identifier)
	return s.pkFinishLogin(t, *ch.ChallengeID, b.get(ch.Options))
}

func pkOptionsOf(t *testing.T, raw json.RawMessage) pkOptions {
	t.Helper()
	var o pkOptions
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatalf("options %s: %v", raw, err)
	}
	return o
}

// withPasskeys enables passkeys for the page at origin, on the clock.
func withPasskeys(origin string, clock *vfClock) func(*Config) {
	return func(c *Config) {
		c.now = clock.now
		c.Selfservice.Methods.Passkey.Enabled = true
		c.Selfservice.Methods.Passkey.Config.RP = PasskeyRPConfig{ID: "localhost", DisplayName: "identityd test", Origins: []string{origin}}
	}
}

// TestPasskeys drives real WebAuthn ceremonies in Chromium through the
// GraphQL API: registering a passkey in a signed-in session, signing in
// with it discoverably and with an identifier, and the refusals: a reused
// or expired challenge, an unknown identifier that answers like a known
// one, a tampered assertion, an authenticator whose counter went back, a
// disabled account, a page on an origin the server does not list, and
// removing the last way to sign in.
func TestPasskeys(t *testing.T) {
	origin := passkeyPage(t, nil)
	clock := &vfClock{}
	eachSelfService(t, withPasskeys(origin, clock), func(t *testing.T, s *testServer, dsn string) {
		b := newPasskeyBrowser(t, origin)
		token, aliceID := s.mustRegister(t, "alice@example.com", pw1)

		// Registration.
		ch := s.pkBeginRegistration(t, token)
		if len(ch.UserErrors) > 0 || ch.ChallengeID == nil {
			t.Fatalf("beginPasskeyRegistration: %+v", ch.UserErrors)
		}
		opts := pkOptionsOf(t, ch.Options)
		if opts.RP.ID != "localhost" || opts.RP.Name != "identityd test" || opts.User.Name != "alice@example.com" ||
			opts.Selection.ResidentKey != "required" || opts.Selection.UserVerification != "preferred" ||
			len(opts.ExcludeCredentials) != 0 || opts.Timeout != 300000 {
			t.Errorf("creation options: %s", ch.Options)
		}
		if handle, err := base64.RawURLEncoding.DecodeString(opts.User.ID); err != nil || len(handle) != 64 {
			t.Errorf("user handle %q: %v, want 64 bytes", opts.User.ID, err)
		}
		cred := b.create(ch.Options)
		if out := s.pkFinishRegistration(t, token, *ch.ChallengeID, cred, strings.Repeat("x", 65)); codePaths(out.UserErrors)[0] != "VALIDATION_FAILED@/displayName" {
			t.Errorf("a 65-character name: %+v", out.UserErrors)
		}
		reg := s.pkFinishRegistration(t, token, *ch.ChallengeID, cred, "  Laptop ")
		if len(reg.UserErrors) > 0 || reg.Identity == nil || len(reg.Identity.Passkeys) != 1 {
			t.Fatalf("finishPasskeyRegistration: %+v", reg)
		}
		pk := reg.Identity.Passkeys[0]
		var credOut struct{ ID string }
		_ = json.Unmarshal(cred, &credOut)
		if pk.ID != credOut.ID || pk.DisplayName == nil || *pk.DisplayName != "Laptop" || pk.LastUsedAt != nil {
			t.Errorf("the passkey registered: %+v (credential id %s)", pk, credOut.ID)
		}
		vfWantCode(t, "the registration challenge again", s.pkFinishRegistration(t, token, *ch.ChallengeID, cred, nil).UserErrors, "INVALID_CODE@/challengeId")

		// The next registration excludes it: the authenticator that holds
		// it refuses to make another.
		again := s.pkBeginRegistration(t, token)
		if o := pkOptionsOf(t, again.Options); len(o.ExcludeCredentials) != 1 || o.ExcludeCredentials[0].ID != pk.ID || o.User.ID != opts.User.ID {
			t.Errorf("second registration's options (want the passkey excluded and the same user handle): %s", again.Options)
		}
		if _, err := b.ceremony("createPasskey", again.Options); err == nil || !strings.Contains(err.Error(), "InvalidStateError") {
			t.Errorf("creating a passkey on the authenticator that holds one: %v, want InvalidStateError", err)
		}

		// Admins see the credential (type and user handle), never its key.
		r := s.admin(t, `query($id: UUID!) { identity(id: $id) { credentials { type identifiers } `+pkFields+` } }`, map[string]any{"id": aliceID})
		if !strings.Contains(string(r.Data), `"type":"PASSKEY"`) || strings.Contains(string(r.Data), "public") {
			t.Errorf("admin's view: %s", r.Data)
		}

		// Sign in discoverably, then with an identifier.
		signedIn := func(what string, out authOut) string {
			t.Helper()
			if len(out.UserErrors) > 0 || out.Session == nil || out.SessionToken == nil {
				t.Fatalf("%s: %+v", what, out.UserErrors)
			}
			if out.Session.Identity.ID != aliceID || out.Session.AAL != "AAL1" ||
				!slices.Equal(methodNames(out.Session.AuthenticationMethods), []string{"PASSKEY/AAL1"}) {
				t.Errorf("%s: session %+v", what, out.Session)
			}
			return *out.SessionToken
		}
		disc := s.pkBeginLogin(t, nil)
		if o := pkOptionsOf(t, disc.Options); len(o.AllowCredentials) != 0 || o.RPID != "localhost" || o.UserVerification != "preferred" {
			t.Errorf("discoverable request options: %s", disc.Options)
		}
		assertion := b.get(disc.Options)
		pkToken := signedIn("discoverable sign-in", s.pkFinishLogin(t, *disc.ChallengeID, assertion))
		vfWantCode(t, "the sign-in challenge again", s.pkFinishLogin(t, *disc.ChallengeID, assertion).UserErrors, "INVALID_CODE@/challengeId")
		r = s.gql(t, pkToken, pkWhoami, nil)
		if !strings.Contains(string(r.Data), `"lastUsedAt":"`) {
			t.Errorf("whoami's passkeys after a sign-in (want lastUsedAt): %s", r.Data)
		}

		byName := s.pkBeginLogin(t, " Alice@Example.com ")
		if o := pkOptionsOf(t, byName.Options); len(o.AllowCredentials) != 1 || o.AllowCredentials[0].ID != pk.ID || o.AllowCredentials[0].Type != "public-key" {
			t.Errorf("request options for alice: %s", byName.Options)
		}
		signedIn("sign-in with an identifier", s.pkFinishLogin(t, *byName.ChallengeID, b.get(byName.Options)))

		// An identifier without an account, or without passkeys, gets
		// options of the same shape, the same each time it asks.
		s.mustRegister(t, "nopasskey@example.com", pw1)
		shape := func(raw json.RawMessage) []string {
			var m map[string]json.RawMessage
			_ = json.Unmarshal(raw, &m)
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			return keys
		}
		for _, who := range []string{"nobody@example.com", "nopasskey@example.com"} {
			one, two := s.pkBeginLogin(t, who), s.pkBeginLogin(t, strings.ToUpper(who))
			o1, o2 := pkOptionsOf(t, one.Options), pkOptionsOf(t, two.Options)
			if !slices.Equal(shape(one.Options), shape(byName.Options)) || len(o1.AllowCredentials) != 1 || o1.AllowCredentials[0].Type != "public-key" {
				t.Errorf("%s: options %s, want the shape of %s", who, one.Options, byName.Options)
			}
			if len(o2.AllowCredentials) != 1 || o1.AllowCredentials[0].ID != o2.AllowCredentials[0].ID || o1.Challenge == o2.Challenge {
				t.Errorf("%s asked twice: %s and %s (want the same credential, a new challenge)", who, one.Options, two.Options)
			}
			// A good assertion for another challenge does not answer it.
			other := s.pkBeginLogin(t, nil)
			out := s.pkFinishLogin(t, *one.ChallengeID, b.get(other.Options))
			vfWantCode(t, who+": someone's assertion", out.UserErrors, "INVALID_CREDENTIALS@<nil>")
		}

		// A tampered assertion: a changed signature, a changed user
		// handle, and an authenticator that signs with zeros.
		tamper := func(field string, change func([]byte) []byte) {
			t.Helper()
			ch := s.pkBeginLogin(t, nil)
			var a map[string]any
			_ = json.Unmarshal(b.get(ch.Options), &a)
			resp := a["response"].(map[string]any)
			raw, _ := base64.RawURLEncoding.DecodeString(resp[field].(string))
			resp[field] = base64.RawURLEncoding.EncodeToString(change(raw))
			bad, _ := json.Marshal(a)
			vfWantCode(t, "a changed "+field, s.pkFinishLogin(t, *ch.ChallengeID, bad).UserErrors, "INVALID_CREDENTIALS@<nil>")
		}
		tamper("signature", func(x []byte) []byte { x[len(x)-1] ^= 1; return x })
		tamper("authenticatorData", func(x []byte) []byte { x[len(x)-1]++; return x }) // the counter
		tamper("clientDataJSON", func(x []byte) []byte {
			return []byte(strings.Replace(string(x), `"webauthn.get"`, `"webauthn.create"`, 1))
		})
		tamper("userHandle", func(x []byte) []byte { x[0] ^= 1; return x })
		bogus := true
		devtools(b, webauthn.SetResponseOverrideBits, webauthn.SetResponseOverrideBitsParams{AuthenticatorID: b.auth, IsBogusSignature: &bogus})
		ch = s.pkBeginLogin(t, nil)
		vfWantCode(t, "a zero signature", s.pkFinishLogin(t, *ch.ChallengeID, b.get(ch.Options)).UserErrors, "INVALID_CREDENTIALS@<nil>")
		devtools(b, webauthn.SetResponseOverrideBits, webauthn.SetResponseOverrideBitsParams{AuthenticatorID: b.auth})
		signedIn("after the tampering", s.pkSignIn(t, b, nil))

		// Bounded input, checked before any work.
		huge := json.RawMessage(`"` + strings.Repeat("A", 40<<10) + `"`)
		if r := s.gql(t, "", pkFinishLogin, map[string]any{"in": map[string]any{"challengeId": *ch.ChallengeID, "credential": huge}}); r.code(0) != "BAD_USER_INPUT" {
			t.Errorf("a 40 KiB credential: %+v", r.Errors)
		}

		// A challenge answered after 5 minutes.
		late := s.pkBeginLogin(t, nil)
		lateAssertion := b.get(late.Options)
		clock.advance(5*time.Minute + time.Second)
		vfWantCode(t, "an expired challenge", s.pkFinishLogin(t, *late.ChallengeID, lateAssertion).UserErrors, "INVALID_CODE@/challengeId")

		// A disabled account is told so only after its passkey verified.
		patch := func(state string) {
			t.Helper()
			if p := patchIdentity(t, s, aliceID, map[string]any{"op": "replace", "path": "/state", "value": state}); len(p.UserErrors) > 0 {
				t.Fatalf("patch state: %+v", p.UserErrors)
			}
		}
		patch("inactive")
		vfWantCode(t, "a disabled account", s.pkSignIn(t, b, nil).UserErrors, "ACCOUNT_DISABLED@<nil>")
		patch("active") // which ended her sessions
		old, _ := s.mustLogin(t, "alice@example.com", pw1)

		// A page on an origin the server does not list.
		elsewhere := newTestServer(t, dsn, func(c *Config) {
			withPersonSchema(c)
			withPasskeys("http://localhost:1", clock)(c)
		})
		ch = elsewhere.pkBeginLogin(t, nil)
		out := elsewhere.pkFinishLogin(t, *ch.ChallengeID, b.get(ch.Options))
		vfWantCode(t, "an assertion made on another origin", out.UserErrors, "INVALID_CREDENTIALS@<nil>")
		carol, _ := elsewhere.mustRegister(t, "carol@example.com", pw1)
		ch = elsewhere.pkBeginRegistration(t, carol)
		cred = b.create(ch.Options)
		regOut := elsewhere.pkFinishRegistration(t, carol, *ch.ChallengeID, cred, nil)
		if got := codePaths(regOut.UserErrors); len(got) != 1 || got[0] != "VALIDATION_FAILED@/credential" || !strings.Contains(regOut.UserErrors[0].Message, "origin") {
			t.Errorf("a registration made on another origin: %+v", regOut.UserErrors)
		}
		var orphan struct{ RawID string }
		_ = json.Unmarshal(cred, &orphan)
		orphanID, _ := base64.RawURLEncoding.DecodeString(orphan.RawID)
		devtools(b, webauthn.RemoveCredential, webauthn.RemoveCredentialParams{AuthenticatorID: b.auth, CredentialID: orphanID})

		// Registration needs a recent sign-in.
		clock.advance(16 * time.Minute)
		if out := s.pkBeginRegistration(t, old); len(out.UserErrors) != 1 || out.UserErrors[0].Code != "REAUTHENTICATION_REQUIRED" {
			t.Errorf("beginPasskeyRegistration 16 minutes after signing in: %+v", out.UserErrors)
		}

		// An authenticator whose counter goes back is a copy: refused, and
		// the passkey with it, whatever count comes next.
		pkID, _ := base64.RawURLEncoding.DecodeString(pk.ID)
		for _, count := range []float64{1, 100000} {
			devtools(b, webauthn.SetCredentialProperties, webauthn.SetCredentialPropertiesParams{AuthenticatorID: b.auth, CredentialID: pkID, SignCount: &count})
			out := s.pkSignIn(t, b, nil)
			if got := codePaths(out.UserErrors); len(got) != 1 || got[0] != "INVALID_CREDENTIALS@<nil>" || !strings.Contains(out.UserErrors[0].Message, "counter") {
				t.Errorf("sign count %v after a higher one: %+v", count, out.UserErrors)
			}
		}

		// Removing: alice has a password, so her only passkey can go.
		fresh, _ := s.mustLogin(t, "alice@example.com", pw1)
		rm := func(token, id string) pkIdentityOut {
			t.Helper()
			r := s.gql(t, token, pkRemove, map[string]any{"id": id})
			if len(r.Errors) > 0 {
				t.Fatalf("removePasskey: %+v", r.Errors)
			}
			return field[pkIdentityOut](t, r, "removePasskey")
		}
		vfWantCode(t, "removing an unknown passkey", rm(fresh, "AAAA").UserErrors, "NOT_FOUND@/id")
		if out := rm(fresh, pk.ID); len(out.UserErrors) > 0 || out.Identity == nil || len(out.Identity.Passkeys) != 0 {
			t.Errorf("removing alice's passkey: %+v", out)
		}
		devtools(b, webauthn.ClearCredentials, webauthn.ClearCredentialsParams{AuthenticatorID: b.auth})

		// Dave has no password: an admin made him and handed him a
		// recovery code. His passkey is his only way in, so it stays.
		r = s.admin(t, `mutation { createIdentity(input: {traits: {email: "dave@example.com"}}) { identity { id } userErrors { code } } }`, nil)
		daveID := field[identityPayloadOut](t, r, "createIdentity").Identity.ID
		code := field[struct{ Code string }](t, s.admin(t, vfCreateCodeQuery, map[string]any{"id": daveID}), "createRecoveryCode").Code
		rec := s.vfRecover(t, map[string]any{"code": code})
		if rec.SessionToken == nil {
			t.Fatalf("dave's recovery: %+v", rec.UserErrors)
		}
		davePasskeys := s.pkRegister(t, b, *rec.SessionToken, "Phone")
		out = s.pkSignIn(t, b, nil)
		if out.Session == nil || out.Session.Identity.ID != daveID {
			t.Fatalf("dave's passkey sign-in: %+v", out)
		}
		vfWantCode(t, "removing the last way to sign in", rm(*out.SessionToken, davePasskeys[0].ID).UserErrors, "VALIDATION_FAILED@/id")
		if r := s.gql(t, *out.SessionToken, pkWhoami, nil); !strings.Contains(string(r.Data), davePasskeys[0].ID) {
			t.Errorf("dave's passkey after the refused removal: %s", r.Data)
		}
	})
}

// TestPasskeysFromThePage runs README.md's browser code as it stands: a
// page on another origin (allowed by serve.cors) registers with a password
// and a cookie, adds a passkey, signs in with it, and reads whoami, every
// call made by the page with the session cookie and its anti-CSRF token.
func TestPasskeysFromThePage(t *testing.T) {
	var api string
	origin := passkeyPage(t, &api)
	s := newTestServer(t, dbtest.NewSQLite(t), func(c *Config) {
		withPasskeys(origin, &vfClock{})(c)
		c.Serve.CORS.Enabled = true
		c.Serve.CORS.AllowedOrigins = []string{origin}
	})
	api = localhostURL(s.URL) + "/graphql"
	b := newPasskeyBrowser(t, origin)
	js := `(async () => {
		const reg = await gql("mutation($in: RegisterInput!) { register(input: $in) { csrfToken userErrors { code } } }",
			{ in: { traits: { email: "page@example.com" }, password: "` + pw1 + `", cookie: true } });
		csrfToken = reg.register.csrfToken;
		const added = await addPasskey("From the page");
		const session = await signInWithPasskey();
		const who = await gql("{ whoami { aal authenticationMethods { method } identity { id passkeys { displayName } } } }");
		return JSON.stringify({ added, session, who });
	})().catch((e) => "error: " + e)`
	out, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil || strings.HasPrefix(out, "error: ") {
		t.Fatalf("the README's flow: %s %v", out, err)
	}
	var got struct {
		Added   []struct{ DisplayName string }
		Session struct{ Identity struct{ ID string } }
		Who     struct {
			Whoami struct {
				AAL                   string
				AuthenticationMethods []struct{ Method string }
				Identity              struct {
					ID       string
					Passkeys []struct{ DisplayName string }
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	w := got.Who.Whoami
	if len(got.Added) != 1 || got.Added[0].DisplayName != "From the page" || got.Session.Identity.ID == "" ||
		w.Identity.ID != got.Session.Identity.ID || w.AAL != "AAL1" || len(w.AuthenticationMethods) != 1 ||
		w.AuthenticationMethods[0].Method != "PASSKEY" || len(w.Identity.Passkeys) != 1 {
		t.Errorf("the README's flow: %s", out)
	}
}

// TestPasskeysOffAndConfig: switched off, every passkey mutation answers
// METHOD_DISABLED; switched on, a relying party that browsers would refuse
// stops the server from starting, naming the key at fault.
func TestPasskeysOffAndConfig(t *testing.T) {
	s := newTestServer(t, dbtest.NewSQLite(t), nil)
	token, _ := s.mustRegister(t, "off@example.com", pw1)
	for _, q := range []struct{ name, query, token string }{
		{"beginPasskeyRegistration", pkBeginReg, token},
		{"finishPasskeyRegistration", `mutation { finishPasskeyRegistration(input: {challengeId: "0190c3b0-0000-7000-8000-000000000000", credential: {}}) { ` + pkErrFields + ` } }`, token},
		{"beginPasskeyLogin", `mutation { beginPasskeyLogin(input: {}) { ` + pkErrFields + ` } }`, ""},
		{"finishPasskeyLogin", `mutation { finishPasskeyLogin(input: {challengeId: "0190c3b0-0000-7000-8000-000000000000", credential: {}}) { ` + pkErrFields + ` } }`, ""},
		{"removePasskey", `mutation { removePasskey(id: "AAAA") { ` + pkErrFields + ` } }`, token},
	} {
		r := s.gql(t, q.token, q.query, nil)
		out := field[struct{ UserErrors []userError }](t, r, q.name)
		if got := codePaths(out.UserErrors); len(got) != 1 || got[0] != "METHOD_DISABLED@<nil>" {
			t.Errorf("%s while off: %v %+v", q.name, got, r.Errors)
		}
	}

	for _, c := range []struct {
		id      string
		origins []string
		want    string
	}{
		{"", []string{"https://example.com"}, "selfservice.methods.passkey.config.rp.id"},
		{"https://example.com", []string{"https://example.com"}, "selfservice.methods.passkey.config.rp.id"},
		{"example.com:443", []string{"https://example.com"}, "selfservice.methods.passkey.config.rp.id"},
		{"127.0.0.1", []string{"http://127.0.0.1"}, "selfservice.methods.passkey.config.rp.id"},
		{"example.com", nil, "selfservice.methods.passkey.config.rp.origins"},
		{"example.com", []string{"https://example.com", "https://example.org"}, "selfservice.methods.passkey.config.rp.origins[1]"},
		{"example.com", []string{"https://notexample.com"}, "selfservice.methods.passkey.config.rp.origins[0]"},
		{"example.com", []string{"https://example.com/login"}, "selfservice.methods.passkey.config.rp.origins[0]"},
		{"example.com", []string{"http://example.com"}, "selfservice.methods.passkey.config.rp.origins[0]"},
		{"example.com", []string{"example.com"}, "selfservice.methods.passkey.config.rp.origins[0]"},
	} {
		cfg := defaultConfig()
		cfg.DSN = dbtest.NewSQLite(t)
		cfg.Secrets.Default = []string{testSecret}
		cfg.Selfservice.Methods.Passkey.Enabled = true
		cfg.Selfservice.Methods.Passkey.Config.RP = PasskeyRPConfig{ID: c.id, Origins: c.origins}
		err := cfg.validate()
		if err == nil {
			var a *app
			a, err = newApp(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil {
				_ = a.Close()
			}
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("rp.id %q, origins %q: %v, want an error naming %s", c.id, c.origins, err, c.want)
		}
	}
	for _, ok := range []PasskeyRPConfig{
		{ID: "example.com", Origins: []string{"https://example.com", "https://app.example.com:8443/"}},
		{ID: "localhost", Origins: []string{"http://localhost:3000", "https://localhost"}},
	} {
		cfg := defaultConfig()
		cfg.DSN = dbtest.NewSQLite(t)
		cfg.Secrets.Default = []string{testSecret}
		cfg.Selfservice.Methods.Passkey.Enabled = true
		cfg.Selfservice.Methods.Passkey.Config.RP = ok
		if err := cfg.validate(); err != nil {
			t.Fatalf("%+v: %v", ok, err)
		}
		a, err := newApp(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Errorf("%+v: %v", ok, err)
			continue
		}
		_ = a.Close()
	}
}
