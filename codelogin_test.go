package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/internal/courier"
	"github.com/identityd/identityd/schemas"
)

// Tests of passwordless sign-in with a one-time code (requestLoginCode,
// loginWithCode, register without a password), end to end through GraphQL
// over HTTP on every database. Codes are read from the mail a real SMTP
// server received, from the SMS an HTTP gateway received, or from the
// courier's outbox (admin courierMessages).

const (
	clRequestQuery = `mutation($i: String!) { requestLoginCode(input: {identifier: $i}) { userErrors { code message path } } }`
	clLoginQuery   = `mutation($in: LoginWithCodeInput!) { loginWithCode(input: $in) { ` + authFields + ` codeSent } }`
	clRegisterQ    = `mutation($in: RegisterInput!) { register(input: $in) { ` + authFields + ` codeSent } }`
	clSubject      = "Your sign-in code"
)

// clAuthOut is an AuthPayload with codeSent.
type clAuthOut struct {
	authOut
	CodeSent bool
}

// withCodeLogin switches the code method on.
func withCodeLogin(c *Config) { c.Selfservice.Methods.Code.Enabled = true }

// clRequest asks for a sign-in code and returns the raw answer; a top-level
// error fails the test.
func (s *testServer) clRequest(t *testing.T, identifier string) *exchange {
	t.Helper()
	x := s.post(t, reqOpts{}, clRequestQuery, map[string]any{"i": identifier})
	if len(x.Errors) > 0 {
		t.Fatalf("requestLoginCode %q: %+v", identifier, x.Errors)
	}
	return x
}

// clRequestErrors asks for a sign-in code and returns its userErrors.
func (s *testServer) clRequestErrors(t *testing.T, identifier string) []userError {
	t.Helper()
	return field[struct{ UserErrors []userError }](t, s.clRequest(t, identifier).gqlResponse, "requestLoginCode").UserErrors
}

// clLogin signs in with a code; a top-level error fails the test.
func (s *testServer) clLogin(t *testing.T, identifier, code string) clAuthOut {
	t.Helper()
	r := s.gql(t, "", clLoginQuery, map[string]any{"in": map[string]any{"identifier": identifier, "code": code}})
	if len(r.Errors) > 0 {
		t.Fatalf("loginWithCode %q: %+v", identifier, r.Errors)
	}
	return field[clAuthOut](t, r, "loginWithCode")
}

// clMustLogin signs in with a code and checks the session it gives: method
// CODE, AAL1, signed in just now.
func (s *testServer) clMustLogin(t *testing.T, identifier, code string) (string, *sessionOut) {
	t.Helper()
	out := s.clLogin(t, identifier, code)
	if len(out.UserErrors) > 0 || out.SessionToken == nil || out.Session == nil || out.CodeSent {
		t.Fatalf("loginWithCode %q: %+v", identifier, out)
	}
	sess := out.Session
	if sess.AAL != "AAL1" || !slices.Equal(methodNames(sess.AuthenticationMethods), []string{"CODE/AAL1"}) ||
		time.Since(sess.AuthenticatedAt) > time.Hour || !sess.Active {
		t.Errorf("code session: %+v", sess)
	}
	return *out.SessionToken, sess
}

// clWantLoginFails asserts loginWithCode gives exactly one userError (as
// "CODE@path") and no session.
func (s *testServer) clWantLoginFails(t *testing.T, what, identifier, code, want string) {
	t.Helper()
	out := s.clLogin(t, identifier, code)
	vfWantCode(t, what, out.UserErrors, want)
	if out.Session != nil || out.SessionToken != nil {
		t.Errorf("%s: a session was made", what)
	}
}

// clWaitMail waits until sink holds n sign-in code mails to address and
// returns the newest one's code.
func clWaitMail(t *testing.T, sink *smtpSink, address string, n int) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var got []*receivedMail
		for _, m := range sink.received() {
			if m.Header.Get("Subject") == clSubject && slices.Contains(m.To, address) {
				got = append(got, m)
			}
		}
		if len(got) >= n {
			last := got[len(got)-1]
			code := vfCodeIn(t, last.Text, false)
			if !strings.Contains(last.HTML, "<strong>"+code+"</strong>") {
				t.Errorf("the HTML part does not carry the code %s: %q", code, last.HTML)
			}
			return code
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sign-in mails to %s after 15s, want %d", len(got), address, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eachCodeLogin runs fn on a fresh server with the code method on (and the
// person schema, then change), on every database, its courier delivering to
// an SMTP sink of its own.
func eachCodeLogin(t *testing.T, change func(*Config), fn func(t *testing.T, s *testServer, sink *smtpSink)) {
	t.Helper()
	dbtest.Each(t, func(t *testing.T, dsn string) {
		sink := newSMTPSink(t, sinkOptions{})
		s := newTestServer(t, dsn, withSMTP(sink, func(c *Config) {
			withPersonSchema(c)
			withCodeLogin(c)
			if change != nil {
				change(c)
			}
		}))
		fn(t, s, sink)
	})
}

// TestCodeLoginByEmail: a code asked for by any spelling of the address
// arrives by mail, signs in once (method CODE, AAL1) and verifies the
// address; a wrong code and the same code again are INVALID_CODE.
func TestCodeLoginByEmail(t *testing.T) {
	eachCodeLogin(t, nil, func(t *testing.T, s *testServer, sink *smtpSink) {
		_, id := s.mustRegister(t, "alice@example.com", pw1)
		if errs := s.clRequestErrors(t, "  Alice@Example.COM "); len(errs) > 0 {
			t.Fatalf("requestLoginCode: %+v", errs)
		}
		code := clWaitMail(t, sink, "alice@example.com", 1)
		if ms := vfOfTemplate(s.vfMessages(t, "alice@example.com"), courier.TemplateLoginCode); len(ms) != 1 ||
			ms[0].Subject == nil || *ms[0].Subject != clSubject || !strings.Contains(ms[0].Body, "15 minutes") {
			t.Errorf("login_code messages: %+v", ms)
		}

		s.clWantLoginFails(t, "a wrong code", "alice@example.com", vfOther(code), "INVALID_CODE@/code")
		s.clWantLoginFails(t, "the code for another address", "bob@example.com", code, "INVALID_CODE@/code")
		s.clWantLoginFails(t, "a verification code is not a login code", "alice@example.com",
			vfCodeIn(t, vfOfTemplate(s.vfMessages(t, "alice@example.com"), "verification_code")[0].Body, false), "INVALID_CODE@/code")

		token, sess := s.clMustLogin(t, "ALICE@example.com", code[:3]+" "+code[3:])
		if sess.Identity == nil || sess.Identity.ID != id {
			t.Errorf("signed in as %+v, want %s", sess.Identity, id)
		}
		if got := s.whoami(t, token); got.Identity == nil || got.Identity.ID != id || got.AAL != "AAL1" {
			t.Errorf("whoami with the code session: %+v", got)
		}
		if as := s.vfAddresses(t, token); len(as) != 1 || !as[0].Verified || as[0].Status != "completed" || as[0].VerifiedAt == nil {
			t.Errorf("address after signing in by code: %+v", as)
		}
		s.clWantLoginFails(t, "the code again", "alice@example.com", code, "INVALID_CODE@/code")
		// The password still works: a code is another way in, not a reset.
		s.mustLogin(t, "alice@example.com", pw1)
	})
}

// TestCodeLoginCookie: with cookie, the session comes as cookies, as login's.
func TestCodeLoginCookie(t *testing.T) {
	eachCodeLogin(t, nil, func(t *testing.T, s *testServer, sink *smtpSink) {
		s.mustRegister(t, "cookie@example.com", pw1)
		s.clRequest(t, "cookie@example.com")
		code := clWaitMail(t, sink, "cookie@example.com", 1)
		x := s.post(t, reqOpts{}, clLoginQuery, map[string]any{"in": map[string]any{"identifier": "cookie@example.com", "code": code, "cookie": true}})
		out := field[clAuthOut](t, x.gqlResponse, "loginWithCode")
		if len(out.UserErrors) > 0 || out.Session == nil || out.SessionToken != nil || out.CsrfToken == nil ||
			cookieNamed(x.Cookies, "identityd_session") == nil {
			t.Fatalf("loginWithCode with cookie: %+v, cookies %v", out, x.Header.Values("Set-Cookie"))
		}
	})
}

// TestCodeLoginUnknownIdentifier: an address nobody has gets the same answer
// as one somebody has, and no mail; something that is no address is
// VALIDATION_FAILED when a code is asked for, INVALID_CODE when one is
// tried.
func TestCodeLoginUnknownIdentifier(t *testing.T) {
	eachCodeLogin(t, nil, func(t *testing.T, s *testServer, sink *smtpSink) {
		s.mustRegister(t, "carol@example.com", pw1)
		known := s.clRequest(t, "carol@example.com")
		unknown := s.clRequest(t, "nobody@example.com")
		if !bytes.Equal(known.Body, unknown.Body) || known.Status != unknown.Status {
			t.Errorf("request for a known address answered %d %s, for an unknown one %d %s", known.Status, known.Body, unknown.Status, unknown.Body)
		}
		clWaitMail(t, sink, "carol@example.com", 1)
		s.vfSettled(t)
		if ms := s.vfMessages(t, "nobody@example.com"); len(ms) != 0 {
			t.Errorf("messages to an unknown address: %+v", ms)
		}
		s.clWantLoginFails(t, "a code for an unknown address", "nobody@example.com", "123456", "INVALID_CODE@/code")

		// A username is a login identifier but no address.
		reg := s.register(t, map[string]any{"schemaId": "person", "password": pw1, "traits": map[string]any{"email": "dan@example.com", "username": "danny"}})
		if len(reg.UserErrors) > 0 {
			t.Fatalf("register: %+v", reg.UserErrors)
		}
		for _, bad := range []string{"danny", "", "   ", "a\x00b@example.com", "12345"} {
			vfWantCode(t, "request for "+strings.ToValidUTF8(bad, "?"), s.clRequestErrors(t, bad), "VALIDATION_FAILED@/identifier")
		}
		s.clWantLoginFails(t, "a code for a username", "danny", "123456", "INVALID_CODE@/code")
		// The person schema's email is a password identifier and a
		// verification address: it gets codes.
		s.clRequest(t, "dan@example.com")
		code := clWaitMail(t, sink, "dan@example.com", 1)
		s.clMustLogin(t, "dan@example.com", code)
	})
}

// TestCodeLoginExpires: a code is refused after
// selfservice.methods.code.config.lifespan, and works within it. The codes
// are read from the outbox: the courier's worker keeps the real time, so it
// would hold back messages stamped by the moved clock.
func TestCodeLoginExpires(t *testing.T) {
	clock := &vfClock{}
	eachCodeLogin(t, func(c *Config) {
		c.now = clock.now
		c.Selfservice.Methods.Code.Config.Lifespan = Duration(10 * time.Minute)
	}, func(t *testing.T, s *testServer, _ *smtpSink) {
		s.mustRegister(t, "erin@example.com", pw1)
		s.clRequest(t, "erin@example.com")
		code := s.vfWaitCode(t, "erin@example.com", courier.TemplateLoginCode, 1)
		clock.advance(11 * time.Minute)
		s.clWantLoginFails(t, "an expired code", "erin@example.com", code, "INVALID_CODE@/code")

		s.clRequest(t, "erin@example.com")
		fresh := s.vfWaitCode(t, "erin@example.com", courier.TemplateLoginCode, 2)
		clock.advance(9 * time.Minute)
		s.clMustLogin(t, "erin@example.com", fresh)
	})
}

// TestCodeLoginAttemptsExhausted: five wrong tries kill a code, the right
// one included; a new code has attempts of its own.
func TestCodeLoginAttemptsExhausted(t *testing.T) {
	eachCodeLogin(t, vfRaisedThrottle, func(t *testing.T, s *testServer, sink *smtpSink) {
		s.mustRegister(t, "fay@example.com", pw1)
		s.clRequest(t, "fay@example.com")
		code := clWaitMail(t, sink, "fay@example.com", 1)
		for i := range 5 { // selfservice.codes.max_attempts
			s.clWantLoginFails(t, "wrong code "+string(rune('1'+i)), "fay@example.com", vfOther(code), "INVALID_CODE@/code")
		}
		s.clWantLoginFails(t, "the right code after five wrong ones", "fay@example.com", code, "INVALID_CODE@/code")

		s.clRequest(t, "fay@example.com")
		fresh := clWaitMail(t, sink, "fay@example.com", 2)
		s.clWantLoginFails(t, "one wrong try at the new code", "fay@example.com", vfOther(fresh), "INVALID_CODE@/code")
		s.clMustLogin(t, "fay@example.com", fresh)
	})
}

// TestCodeLoginNewCodeReplacesOld: asking again kills the code sent before.
func TestCodeLoginNewCodeReplacesOld(t *testing.T) {
	eachCodeLogin(t, nil, func(t *testing.T, s *testServer, sink *smtpSink) {
		s.mustRegister(t, "gil@example.com", pw1)
		s.clRequest(t, "gil@example.com")
		first := clWaitMail(t, sink, "gil@example.com", 1)
		s.clRequest(t, "gil@example.com")
		second := clWaitMail(t, sink, "gil@example.com", 2)
		if first == second {
			t.Skip("the two codes happen to be equal") // one in a million
		}
		s.clWantLoginFails(t, "the replaced code", "gil@example.com", first, "INVALID_CODE@/code")
		s.clMustLogin(t, "gil@example.com", second)
	})
}

// TestCodeLoginThrottled: requests for codes count per address like
// verification's; the sixth within the window waits.
func TestCodeLoginThrottled(t *testing.T) {
	eachCodeLogin(t, nil, func(t *testing.T, s *testServer, _ *smtpSink) {
		for range 5 {
			s.clRequest(t, "hal@example.com")
		}
		x := s.post(t, reqOpts{}, clRequestQuery, map[string]any{"i": "HAL@example.com"})
		if x.code(0) != "TOO_MANY_ATTEMPTS" || x.Errors[0].Extensions["retryAfterSeconds"] == nil {
			t.Fatalf("sixth request: %+v, want TOO_MANY_ATTEMPTS with retryAfterSeconds", x.Errors)
		}
	})
}

// TestCodeLoginDisabled: with the method off (the default) both mutations
// are METHOD_DISABLED and register needs a password.
func TestCodeLoginDisabled(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		s.mustRegister(t, "ida@example.com", pw1)
		vfWantCode(t, "requestLoginCode", s.clRequestErrors(t, "ida@example.com"), "METHOD_DISABLED@<nil>")
		s.clWantLoginFails(t, "loginWithCode", "ida@example.com", "123456", "METHOD_DISABLED@<nil>")
		r := s.gql(t, "", clRegisterQ, map[string]any{"in": map[string]any{"traits": map[string]any{"email": "ivy@example.com"}}})
		out := field[clAuthOut](t, r, "register")
		vfWantCode(t, "register without a password", out.UserErrors, "PASSWORD_POLICY@/password")
		if out.CodeSent || out.Session != nil {
			t.Errorf("register without a password while the method is off: %+v", out)
		}
		if ms := s.vfMessages(t, "ivy@example.com"); len(ms) != 0 {
			t.Errorf("messages after a refused register: %+v", ms)
		}
	})
}

// TestCodeLoginPasswordlessRegister: register without a password (Kratos's
// passwordless_enabled switches it on too) makes no session, sends a code
// that signs in, and leaves no password to log in with.
func TestCodeLoginPasswordlessRegister(t *testing.T) {
	eachCodeLogin(t, func(c *Config) {
		c.Selfservice.Methods.Code.Enabled = false
		c.Selfservice.Methods.Code.PasswordlessEnabled = true
	}, func(t *testing.T, s *testServer, sink *smtpSink) {
		x := s.post(t, reqOpts{}, clRegisterQ, map[string]any{"in": map[string]any{"traits": map[string]any{"email": "jo@example.com"}}})
		out := field[clAuthOut](t, x.gqlResponse, "register")
		if len(x.Errors) > 0 || len(out.UserErrors) > 0 || !out.CodeSent || out.Session != nil || out.SessionToken != nil || out.CsrfToken != nil {
			t.Fatalf("passwordless register: %+v %+v", x.Errors, out)
		}
		if c := cookieNamed(x.Cookies, "identityd_session"); c != nil {
			t.Errorf("a passwordless register set a session cookie: %+v", c)
		}
		// One message, the sign-in code: its address needs no verification
		// code as well.
		if ms := s.vfMessages(t, "jo@example.com"); len(ms) != 1 || ms[0].TemplateType != courier.TemplateLoginCode {
			t.Errorf("messages after a passwordless register: %+v", ms)
		}
		code := clWaitMail(t, sink, "jo@example.com", 1)
		token, sess := s.clMustLogin(t, "jo@example.com", code)
		if sess.Identity == nil || sess.Identity.Traits["email"] != "jo@example.com" {
			t.Errorf("signed in as %+v", sess.Identity)
		}
		if as := s.vfAddresses(t, token); len(as) != 1 || !as[0].Verified {
			t.Errorf("address after the first sign-in: %+v", as)
		}
		for _, pw := range []string{pw1, "", code} {
			s.wantLoginFails(t, "jo@example.com", pw, "INVALID_CREDENTIALS")
		}
		// The same address again is taken, as on any register.
		r := s.gql(t, "", clRegisterQ, map[string]any{"in": map[string]any{"traits": map[string]any{"email": "JO@example.com"}}})
		vfWantCode(t, "a taken address", field[clAuthOut](t, r, "register").UserErrors, "IDENTIFIER_TAKEN@/traits/email")
		// Signing in again later is requestLoginCode's.
		s.clRequest(t, "jo@example.com")
		s.clMustLogin(t, "jo@example.com", clWaitMail(t, sink, "jo@example.com", 2))
		// A fresh code session may add a password without a current one.
		r = s.gql(t, token, `mutation($in: ChangePasswordInput!) { changeMyPassword(input: $in) { `+identFields+` } }`,
			map[string]any{"in": map[string]any{"newPassword": pw2, "revokeOtherSessions": false}})
		if p := field[identityPayloadOut](t, r, "changeMyPassword"); len(r.Errors) > 0 || len(p.UserErrors) > 0 {
			t.Fatalf("changeMyPassword after a code sign-in: %+v %+v", r.Errors, p.UserErrors)
		}
		s.mustLogin(t, "jo@example.com", pw2)

		// Traits that are invalid stay invalid.
		r = s.gql(t, "", clRegisterQ, map[string]any{"in": map[string]any{"traits": map[string]any{"email": "not-an-email"}}})
		if errs := field[clAuthOut](t, r, "register").UserErrors; len(errs) == 0 || errs[0].Code != "VALIDATION_FAILED" {
			t.Errorf("invalid traits: %+v", errs)
		}
	})
}

// codeOnlySchema marks its email for sign-in codes only (Kratos's
// `"code": {"identifier": true, "via": "email"}`).
const (
	codeOnlySchema = `{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "properties": {
    "traits": {
      "type": "object",
      "properties": {
        "email": {"type": "string", "format": "email",
          "ory.sh/kratos": {"credentials": {"code": {"identifier": true, "via": "email"}}}},
        "name": {"type": "string"}
      },
      "required": ["email"],
      "additionalProperties": false
    }
  }
}`
)

// TestCodeLoginSchemas: a schema that marks a `code` identifier works
// without a password identifier or a verification address; a schema with no
// address cannot register without a password.
func TestCodeLoginSchemas(t *testing.T) {
	eachCodeLogin(t, func(c *Config) {
		c.Identity.Schemas = append(c.Identity.Schemas,
			schemas.Source{ID: "code", URL: "base64://" + base64.StdEncoding.EncodeToString([]byte(codeOnlySchema))},
			schemas.Source{ID: "username", URL: "preset://username"})
	}, func(t *testing.T, s *testServer, sink *smtpSink) {
		out := s.register(t, map[string]any{"schemaId": "code", "traits": map[string]any{"email": "Kim@Example.com", "name": "Kim"}})
		if len(out.UserErrors) > 0 {
			t.Fatalf("register with the code schema: %+v", out.UserErrors)
		}
		code := clWaitMail(t, sink, "kim@example.com", 1)
		_, sess := s.clMustLogin(t, "kim@example.com", code)
		if sess.Identity == nil || sess.Identity.SchemaID != "code" {
			t.Errorf("signed in as %+v", sess.Identity)
		}
		s.clRequest(t, "kim@example.com")
		s.clMustLogin(t, "kim@example.com", clWaitMail(t, sink, "kim@example.com", 2))

		r := s.gql(t, "", clRegisterQ, map[string]any{"in": map[string]any{"schemaId": "username", "traits": map[string]any{"username": "lou"}}})
		got := field[clAuthOut](t, r, "register")
		vfWantCode(t, "passwordless register without an address", got.UserErrors, "VALIDATION_FAILED@/traits")
		if len(got.UserErrors) == 1 && !strings.Contains(got.UserErrors[0].Message, `"code": {"identifier": true, "via": "email"}`) {
			t.Errorf("the message does not say how to mark an address: %q", got.UserErrors[0].Message)
		}
	})
}

// TestCodeLoginInactiveIdentity: a disabled identity's request answers as
// any other and its code arrives; redeeming it is ACCOUNT_DISABLED and
// leaves it unused, so it works once the identity is enabled again.
func TestCodeLoginInactiveIdentity(t *testing.T) {
	eachCodeLogin(t, nil, func(t *testing.T, s *testServer, sink *smtpSink) {
		_, id := s.mustRegister(t, "max@example.com", pw1)
		setState := func(state string) {
			t.Helper()
			s.admin(t, `mutation($id: UUID!, $v: JSON) { patchIdentity(id: $id, patch: [{op: "replace", path: "/state", value: $v}]) { userErrors { code } } }`,
				map[string]any{"id": id, "v": state})
		}
		setState("inactive")
		disabled := s.clRequest(t, "max@example.com")
		unknown := s.clRequest(t, "nobody-here@example.com")
		if !bytes.Equal(disabled.Body, unknown.Body) {
			t.Errorf("request for a disabled identity answered %s, for an unknown address %s", disabled.Body, unknown.Body)
		}
		code := clWaitMail(t, sink, "max@example.com", 1)
		s.clWantLoginFails(t, "a disabled identity", "max@example.com", code, "ACCOUNT_DISABLED@<nil>")
		setState("active")
		s.clMustLogin(t, "max@example.com", code)
	})
}

// TestCodeLoginAddressChanged: a code sent to an address the identity no
// longer has signs nobody in.
func TestCodeLoginAddressChanged(t *testing.T) {
	eachCodeLogin(t, nil, func(t *testing.T, s *testServer, sink *smtpSink) {
		reg := s.register(t, map[string]any{"schemaId": "person", "password": pw1, "traits": map[string]any{"email": "ned@example.com", "username": "neddy"}})
		if len(reg.UserErrors) > 0 {
			t.Fatalf("register: %+v", reg.UserErrors)
		}
		s.clRequest(t, "ned@example.com")
		code := clWaitMail(t, sink, "ned@example.com", 1)
		r := s.gql(t, *reg.SessionToken, `mutation($t: JSON!) { updateMyTraits(traits: $t) { `+identFields+` } }`,
			map[string]any{"t": map[string]any{"email": "ned2@example.com", "username": "neddy"}})
		if out := field[identityPayloadOut](t, r, "updateMyTraits"); len(r.Errors) > 0 || len(out.UserErrors) > 0 {
			t.Fatalf("updateMyTraits: %+v %+v", r.Errors, out.UserErrors)
		}
		s.clWantLoginFails(t, "a code to the old address", "ned@example.com", code, "INVALID_CODE@/code")
	})
}

// TestCodeLoginBySMS: a phone number (preset://sms marks it a `code`
// identifier via sms) gets its code as an SMS through an HTTP gateway, in
// Kratos's template data (login_code), and signs in with any spelling of
// the number.
func TestCodeLoginBySMS(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		var mu sync.Mutex
		var got []map[string]string
		gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			var m map[string]string
			if err := json.Unmarshal(b, &m); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			mu.Lock()
			got = append(got, m)
			mu.Unlock()
		}))
		defer gateway.Close()
		body := `function(ctx) { To: ctx.recipient, Body: ctx.body, Type: ctx.template_type, Code: ctx.template_data.login_code }`
		s := newTestServer(t, dsn, func(c *Config) {
			withCodeLogin(c)
			c.Identity.Schemas = append(c.Identity.Schemas, schemas.Source{ID: "sms", URL: "preset://sms"})
			c.Courier.Worker.PullWait = Duration(20 * time.Millisecond)
			c.Courier.Channels = []courier.Channel{{ID: "sms", Type: "http", RequestConfig: courier.RequestConfig{
				URL: gateway.URL + "/send", Body: "base64://" + base64.StdEncoding.EncodeToString([]byte(body)),
			}}}
		})
		out := s.register(t, map[string]any{"schemaId": "sms", "traits": map[string]any{"phone_number": "+1 415 555 2671"}})
		if len(out.UserErrors) > 0 {
			t.Fatalf("passwordless register with a phone: %+v", out.UserErrors)
		}
		waitSMS := func(n int) map[string]string {
			t.Helper()
			deadline := time.Now().Add(15 * time.Second)
			for {
				mu.Lock()
				var ms []map[string]string
				for _, m := range got {
					if m["Type"] == "login_code_valid" {
						ms = append(ms, m)
					}
				}
				mu.Unlock()
				if len(ms) >= n {
					return ms[len(ms)-1]
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d login SMS after 15s, want %d", len(ms), n)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		sms := waitSMS(1)
		if sms["To"] != "+14155552671" || sms["Body"] != "Your sign-in code is: "+sms["Code"] || len(sms["Code"]) != 6 {
			t.Errorf("SMS: %+v", sms)
		}
		token, _ := s.clMustLogin(t, "+1 (415) 555-2671", sms["Code"])
		if as := s.vfAddresses(t, token); len(as) != 1 || as[0].Via != "sms" || !as[0].Verified {
			t.Errorf("phone after signing in by code: %+v", as)
		}
		s.clRequest(t, "+14155552671")
		s.clMustLogin(t, "+14155552671", waitSMS(2)["Code"])
	})
}

// TestCodeLoginSecondFactor: a code is a first factor. An identity with a
// second factor gets an AAL1 session that whoami refuses under
// session.whoami.required_aal: highest_available (the default) until
// loginSecondFactor lifts it.
func TestCodeLoginSecondFactor(t *testing.T) {
	eachCodeLogin(t, nil, func(t *testing.T, s *testServer, sink *smtpSink) {
		r := s.admin(t, `mutation($in: CreateIdentityInput!) { createIdentity(input: $in) { `+identFields+` } }`, map[string]any{"in": map[string]any{
			"traits":      map[string]any{"email": "oli@example.com"},
			"credentials": map[string]any{"lookupSecret": map[string]any{"codes": []string{"abcde-fghij", "klmno-pqrst"}}},
		}})
		if out := field[identityPayloadOut](t, r, "createIdentity"); len(out.UserErrors) > 0 {
			t.Fatalf("createIdentity: %+v", out.UserErrors)
		}
		s.clRequest(t, "oli@example.com")
		token, sess := s.clMustLogin(t, "oli@example.com", clWaitMail(t, sink, "oli@example.com", 1))
		if sess.AAL != "AAL1" {
			t.Errorf("code session of an identity with a second factor: %+v", sess)
		}
		if w := s.gql(t, token, `{ whoami { id } }`, nil); w.code(0) != "SESSION_AAL2_REQUIRED" {
			t.Errorf("whoami at AAL1: %+v, want SESSION_AAL2_REQUIRED", w.Errors)
		}
		w := s.gql(t, token, `mutation($in: LoginSecondFactorInput!) { loginSecondFactor(input: $in) { `+authFields+` } }`,
			map[string]any{"in": map[string]any{"lookupSecret": "abcde-fghij"}})
		out := field[authOut](t, w, "loginSecondFactor")
		if len(w.Errors) > 0 || len(out.UserErrors) > 0 || out.Session == nil || out.Session.AAL != "AAL2" ||
			!slices.Equal(methodNames(out.Session.AuthenticationMethods), []string{"CODE/AAL1", "LOOKUP_SECRET/AAL2"}) {
			t.Fatalf("loginSecondFactor after a code: %+v %+v", w.Errors, out)
		}
		if got := s.whoami(t, token); got.AAL != "AAL2" {
			t.Errorf("whoami after the second factor: %+v", got)
		}
	})
}
