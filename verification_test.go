package main

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/schemas"
)

// Tests of verification, recovery, invitations and admin recovery codes,
// end to end through GraphQL over HTTP on every database. Codes are read
// from the messages the flows queue in the courier's outbox (admin
// courierMessages), and once from a mail a real SMTP server received.

const (
	vfRequestVerification = `mutation($a: String!) { requestVerificationCode(input: {address: $a}) { userErrors { code message path } } }`
	vfRequestRecovery     = `mutation($a: String!) { requestRecoveryCode(input: {address: $a}) { userErrors { code message path } } }`
	vfVerifyQuery         = `mutation($a: String!, $c: String!) { verifyAddress(input: {address: $a, code: $c}) { address { id value via verified status verifiedAt } userErrors { code message path } } }`
	vfRecoverQuery        = `mutation($in: RecoverAccountInput!) { recoverAccount(input: $in) { ` + authFields + ` } }`
	vfMessagesQuery       = `query($r: String!) { courierMessages(filter: {recipient: $r}) { edges { node { id recipient templateType subject body status } } } }`
	vfAddressesQuery      = `{ whoami { identity { verifiableAddresses { value via verified status verifiedAt } } } }`
	vfCreateCodeQuery     = `mutation($id: UUID!, $in: String) { createRecoveryCode(identityId: $id, expiresIn: $in) { code expiresAt userErrors { code message path } } }`
	vfInviteQuery         = `mutation($in: CreateIdentityInput!) { inviteIdentity(input: $in) { ` + identFields + ` } }`
)

// vfClock is a clock tests move forward: the services see now plus the
// offset.
type vfClock struct{ offset atomic.Int64 }

func (c *vfClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *vfClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

type vfAddress struct {
	ID         string
	Value      string
	Via        string
	Verified   bool
	Status     string
	VerifiedAt *time.Time
}

type vfVerifyOut struct {
	Address    *vfAddress
	UserErrors []userError
}

type vfMessage struct {
	ID           string
	Recipient    string
	TemplateType string
	Subject      *string
	Body         string
	Status       string
}

// vfMessages lists the courier messages to recipient, newest first.
func (s *testServer) vfMessages(t *testing.T, recipient string) []vfMessage {
	t.Helper()
	r := s.admin(t, vfMessagesQuery, map[string]any{"r": recipient})
	conn := field[struct {
		Edges []struct{ Node vfMessage }
	}](t, r, "courierMessages")
	out := make([]vfMessage, len(conn.Edges))
	for i, e := range conn.Edges {
		out[i] = e.Node
	}
	return out
}

// vfOfTemplate keeps the messages made from template.
func vfOfTemplate(ms []vfMessage, template string) []vfMessage {
	var out []vfMessage
	for _, m := range ms {
		if m.TemplateType == template {
			out = append(out, m)
		}
	}
	return out
}

// vfWaitCode waits until at least n messages of template to recipient are
// queued (requests are resolved in the background) and returns the code in
// the newest.
func (s *testServer) vfWaitCode(t *testing.T, recipient, template string, n int) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ms := vfOfTemplate(s.vfMessages(t, recipient), template)
		if len(ms) >= n {
			return vfCodeIn(t, ms[0].Body, template == "invitation")
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %d %s message to %s after 15s: %+v", n, template, recipient, ms)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// vfSettled waits until every recorded code request is resolved, so that a
// message that was not sent can be told from one not sent yet.
func (s *testServer) vfSettled(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n, err := s.app.store.PendingCodeRequests(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d code requests still pending after 15s", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	vfShortCode = regexp.MustCompile(`\b[0-9]{6}\b`)
	vfLongCode  = regexp.MustCompile(`\b[0-9A-Z]{26}\b`)
)

// vfCodeIn finds the one code in a message body.
func vfCodeIn(t *testing.T, body string, long bool) string {
	t.Helper()
	re := vfShortCode
	if long {
		re = vfLongCode
	}
	found := re.FindAllString(body, -1)
	if len(found) != 1 {
		t.Fatalf("want one code in %q, found %v", body, found)
	}
	return found[0]
}

// vfOther is a code that is not code: its last digit changed.
func vfOther(code string) string {
	last := code[len(code)-1]
	return code[:len(code)-1] + string('0'+(last-'0'+1)%10)
}

// vfRequest asks for a code and returns the raw answer, failing on any
// top-level error.
func (s *testServer) vfRequest(t *testing.T, query, address string) *exchange {
	t.Helper()
	x := s.post(t, reqOpts{}, query, map[string]any{"a": address})
	if len(x.Errors) > 0 {
		t.Fatalf("request a code for %q: %+v", address, x.Errors)
	}
	return x
}

func (s *testServer) vfVerify(t *testing.T, address, code string) vfVerifyOut {
	t.Helper()
	r := s.gql(t, "", vfVerifyQuery, map[string]any{"a": address, "c": code})
	if len(r.Errors) > 0 {
		t.Fatalf("verifyAddress: %+v", r.Errors)
	}
	return field[vfVerifyOut](t, r, "verifyAddress")
}

func (s *testServer) vfRecover(t *testing.T, in map[string]any) authOut {
	t.Helper()
	r := s.gql(t, "", vfRecoverQuery, map[string]any{"in": in})
	if len(r.Errors) > 0 {
		t.Fatalf("recoverAccount: %+v", r.Errors)
	}
	return field[authOut](t, r, "recoverAccount")
}

// vfAddresses returns the caller's verifiable addresses.
func (s *testServer) vfAddresses(t *testing.T, token string) []vfAddress {
	t.Helper()
	r := s.gql(t, token, vfAddressesQuery, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("whoami: %+v", r.Errors)
	}
	return field[struct {
		Identity struct{ VerifiableAddresses []vfAddress }
	}](t, r, "whoami").Identity.VerifiableAddresses
}

// vfWantCode asserts userErrors of exactly one code at path.
func vfWantCode(t *testing.T, what string, errs []userError, want string) {
	t.Helper()
	if got := codePaths(errs); len(got) != 1 || got[0] != want {
		t.Errorf("%s: userErrors %v, want [%s]", what, got, want)
	}
}

// vfRaisedThrottle lets tests make many requests and checks per address.
func vfRaisedThrottle(c *Config) {
	c.Selfservice.Codes.Throttle.FreePerAddress = 10000
	c.Selfservice.Codes.Throttle.FreePerIdentifier = 10000
}

func TestVerificationRegisterAndVerify(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		token, _ := s.mustRegister(t, "alice@example.com", pw1)
		// Queued in register's own transaction: there at once.
		ms := s.vfMessages(t, "alice@example.com")
		if len(ms) != 1 || ms[0].TemplateType != "verification_code" || ms[0].Status != "QUEUED" || ms[0].Subject == nil {
			t.Fatalf("after register: messages %+v, want one queued verification_code email", ms)
		}
		code := vfCodeIn(t, ms[0].Body, false)
		if as := s.vfAddresses(t, token); len(as) != 1 || as[0].Verified || as[0].Status != "sent" || as[0].VerifiedAt != nil {
			t.Fatalf("before verifying: %+v, want one unverified address, status sent", as)
		}

		out := s.vfVerify(t, "alice@example.com", vfOther(code))
		vfWantCode(t, "a wrong code", out.UserErrors, "INVALID_CODE@/code")
		if out.Address != nil {
			t.Errorf("a wrong code answered an address: %+v", out.Address)
		}

		// Case and spacing of the address, spaces in the code: all the same.
		out = s.vfVerify(t, "  Alice@Example.COM ", code[:3]+" "+code[3:])
		if len(out.UserErrors) > 0 || out.Address == nil {
			t.Fatalf("the right code: %+v", out)
		}
		a := out.Address
		if a.Value != "alice@example.com" || a.Via != "email" || !a.Verified || a.Status != "completed" || a.VerifiedAt == nil {
			t.Errorf("verified address: %+v", a)
		}
		if as := s.vfAddresses(t, token); len(as) != 1 || !as[0].Verified || as[0].Status != "completed" {
			t.Errorf("whoami after verifying: %+v", as)
		}

		out = s.vfVerify(t, "alice@example.com", code)
		vfWantCode(t, "the code again", out.UserErrors, "INVALID_CODE@/code")

		// A verification code is not a recovery code.
		rec := s.vfRecover(t, map[string]any{"address": "alice@example.com", "code": code})
		vfWantCode(t, "a verification code used to recover", rec.UserErrors, "INVALID_CODE@/code")
		if rec.Session != nil || rec.SessionToken != nil {
			t.Error("a verification code recovered the account")
		}
	})
}

func TestVerificationUpdateMyTraitsSendsCode(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		reg := s.register(t, map[string]any{"schemaId": "person", "password": pw1,
			"traits": map[string]any{"email": "old@example.com", "username": "olive"}})
		if len(reg.UserErrors) > 0 {
			t.Fatalf("register: %+v", reg.UserErrors)
		}
		token := *reg.SessionToken
		update := func(traits map[string]any) {
			t.Helper()
			r := s.gql(t, token, `mutation($t: JSON!) { updateMyTraits(traits: $t) { `+identFields+` } }`, map[string]any{"t": traits})
			if out := field[identityPayloadOut](t, r, "updateMyTraits"); len(r.Errors) > 0 || len(out.UserErrors) > 0 {
				t.Fatalf("updateMyTraits: %+v %+v", r.Errors, out.UserErrors)
			}
		}
		update(map[string]any{"email": "new@example.com", "username": "olive"})
		code := s.vfWaitCode(t, "new@example.com", "verification_code", 1)
		if out := s.vfVerify(t, "new@example.com", code); out.Address == nil || !out.Address.Verified {
			t.Fatalf("verify the new address: %+v", out)
		}
		// A change that keeps the address sends nothing, and the address
		// stays verified.
		update(map[string]any{"email": "new@example.com", "username": "olive", "name": "Olive"})
		if ms := s.vfMessages(t, "new@example.com"); len(ms) != 1 {
			t.Errorf("messages to new@ after a name change: %d, want 1", len(ms))
		}
		if as := s.vfAddresses(t, token); len(as) != 1 || !as[0].Verified {
			t.Errorf("addresses after a name change: %+v", as)
		}
		// The old address's code died with the address.
		old := vfCodeIn(t, s.vfMessages(t, "old@example.com")[0].Body, false)
		vfWantCode(t, "the old address's code", s.vfVerify(t, "old@example.com", old).UserErrors, "INVALID_CODE@/code")
	})
}

func TestVerificationRequestCode(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		s.mustRegister(t, "bob@example.com", pw1)
		first := s.vfWaitCode(t, "bob@example.com", "verification_code", 1)
		s.vfRequest(t, vfRequestVerification, "BOB@example.com")
		second := s.vfWaitCode(t, "bob@example.com", "verification_code", 2)
		if out := s.vfVerify(t, "bob@example.com", second); out.Address == nil || !out.Address.Verified {
			t.Fatalf("verify with the requested code: %+v", out)
		}
		// Verifying used up the address's other codes too.
		vfWantCode(t, "the first code after verifying", s.vfVerify(t, "bob@example.com", first).UserErrors, "INVALID_CODE@/code")

		// Verified already, or nobody's: nothing is sent.
		s.vfRequest(t, vfRequestVerification, "bob@example.com")
		s.vfRequest(t, vfRequestVerification, "nobody@example.com")
		s.vfSettled(t)
		if n := len(s.vfMessages(t, "bob@example.com")); n != 2 {
			t.Errorf("messages to a verified address: %d, want 2", n)
		}
		if n := len(s.vfMessages(t, "nobody@example.com")); n != 0 {
			t.Errorf("messages to an unknown address: %d, want 0", n)
		}

		for _, bad := range []string{"", "   ", "a\x00b@example.com"} {
			x := s.vfRequest(t, vfRequestVerification, bad)
			out := field[struct{ UserErrors []userError }](t, x.gqlResponse, "requestVerificationCode")
			vfWantCode(t, "request for "+strings.ToValidUTF8(bad, "?"), out.UserErrors, "VALIDATION_FAILED@/address")
		}
	})
}

func TestVerificationCodeExpires(t *testing.T) {
	clock := &vfClock{}
	eachSelfService(t, func(c *Config) { c.now = clock.now }, func(t *testing.T, s *testServer, _ string) {
		s.mustRegister(t, "carol@example.com", pw1)
		code := s.vfWaitCode(t, "carol@example.com", "verification_code", 1)
		clock.advance(61 * time.Minute) // selfservice.flows.verification.lifespan is 1h
		vfWantCode(t, "an expired code", s.vfVerify(t, "carol@example.com", code).UserErrors, "INVALID_CODE@/code")

		s.vfRequest(t, vfRequestVerification, "carol@example.com")
		fresh := s.vfWaitCode(t, "carol@example.com", "verification_code", 2)
		clock.advance(59 * time.Minute)
		if out := s.vfVerify(t, "carol@example.com", fresh); out.Address == nil || !out.Address.Verified {
			t.Fatalf("a code within its lifespan: %+v", out)
		}
	})
}

func TestVerificationAttemptsExhausted(t *testing.T) {
	eachSelfService(t, vfRaisedThrottle, func(t *testing.T, s *testServer, _ string) {
		s.mustRegister(t, "dave@example.com", pw1)
		code := s.vfWaitCode(t, "dave@example.com", "verification_code", 1)
		wrong := vfOther(code)
		for i := range 5 { // selfservice.codes.max_attempts
			vfWantCode(t, "wrong code "+string(rune('1'+i)), s.vfVerify(t, "dave@example.com", wrong).UserErrors, "INVALID_CODE@/code")
		}
		// Dead: the right code no longer works, and says so as any other.
		vfWantCode(t, "the right code after five wrong ones", s.vfVerify(t, "dave@example.com", code).UserErrors, "INVALID_CODE@/code")

		// A burst of wrong guesses at a fresh code compares at most five:
		// the attempts are charged before the compare.
		s.vfRequest(t, vfRequestVerification, "dave@example.com")
		fresh := s.vfWaitCode(t, "dave@example.com", "verification_code", 2)
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				r := s.gql(t, "", vfVerifyQuery, map[string]any{"a": "dave@example.com", "c": vfOther(fresh)})
				if len(r.Errors) > 0 {
					t.Errorf("burst: %+v", r.Errors)
				}
			})
		}
		wg.Wait()
		vfWantCode(t, "the right code after a burst of twenty wrong ones", s.vfVerify(t, "dave@example.com", fresh).UserErrors, "INVALID_CODE@/code")

		// A new code has attempts of its own.
		s.vfRequest(t, vfRequestVerification, "dave@example.com")
		third := s.vfWaitCode(t, "dave@example.com", "verification_code", 3)
		vfWantCode(t, "one wrong try at the new code", s.vfVerify(t, "dave@example.com", vfOther(third)).UserErrors, "INVALID_CODE@/code")
		if out := s.vfVerify(t, "dave@example.com", third); out.Address == nil || !out.Address.Verified {
			t.Fatalf("the new code: %+v", out)
		}
	})
}

func TestVerificationRequestsAreThrottled(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		// Five free per address (selfservice.codes.throttle), then a wait.
		for i := range 5 {
			if x := s.post(t, reqOpts{}, vfRequestRecovery, map[string]any{"a": "eve@example.com"}); len(x.Errors) > 0 {
				t.Fatalf("request %d: %+v", i+1, x.Errors)
			}
		}
		x := s.post(t, reqOpts{}, vfRequestRecovery, map[string]any{"a": "Eve@example.com"})
		if x.code(0) != "TOO_MANY_ATTEMPTS" || x.Errors[0].Extensions["retryAfterSeconds"] == nil {
			t.Fatalf("sixth request: %+v, want TOO_MANY_ATTEMPTS with retryAfterSeconds", x.Errors)
		}
		// Another address from the same client is still free.
		if x := s.post(t, reqOpts{}, vfRequestRecovery, map[string]any{"a": "frank@example.com"}); len(x.Errors) > 0 {
			t.Errorf("another address: %+v", x.Errors)
		}
	})
}

func TestRecoveryWithNewPassword(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		first, _ := s.mustRegister(t, "erin@example.com", pw1)
		second, _ := s.mustLogin(t, "erin@example.com", pw1)
		s.vfRequest(t, vfRequestRecovery, "erin@example.com")
		code := s.vfWaitCode(t, "erin@example.com", "recovery_code", 1)

		// A password the policy refuses leaves the code usable.
		out := s.vfRecover(t, map[string]any{"address": "erin@example.com", "code": code, "newPassword": "short"})
		if len(out.UserErrors) == 0 || out.UserErrors[0].Code != "PASSWORD_POLICY" || *out.UserErrors[0].Path != "/newPassword" || out.Session != nil {
			t.Fatalf("a weak new password: %+v", out)
		}
		s.wantLoginFails(t, "erin@example.com", "short", "INVALID_CREDENTIALS")

		out = s.vfRecover(t, map[string]any{"address": "erin@example.com", "code": code, "newPassword": pw2})
		if len(out.UserErrors) > 0 || out.SessionToken == nil || out.Session == nil {
			t.Fatalf("recover: %+v", out)
		}
		if !slices.Equal(methodNames(out.Session.AuthenticationMethods), []string{"CODE/AAL1"}) || time.Since(out.Session.AuthenticatedAt) > time.Minute {
			t.Errorf("recovery session: %+v", out.Session)
		}
		token := *out.SessionToken
		s.wantUnauthenticated(t, first, "the register session after a recovery with a new password")
		s.wantUnauthenticated(t, second, "a login session after a recovery with a new password")
		if got := s.whoami(t, token); got.Identity == nil || got.Identity.Traits["email"] != "erin@example.com" {
			t.Errorf("whoami with the recovery session: %+v", got)
		}
		s.wantLoginFails(t, "erin@example.com", pw1, "INVALID_CREDENTIALS")
		s.mustLogin(t, "erin@example.com", pw2)
		// Receiving the code proved the address.
		if as := s.vfAddresses(t, token); len(as) != 1 || !as[0].Verified {
			t.Errorf("address after recovery: %+v", as)
		}
		again := s.vfRecover(t, map[string]any{"address": "erin@example.com", "code": code, "newPassword": pw3})
		vfWantCode(t, "the recovery code again", again.UserErrors, "INVALID_CODE@/code")
	})
}

func TestRecoveryWithoutNewPassword(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		before, _ := s.mustRegister(t, "fay@example.com", pw1)
		s.vfRequest(t, vfRequestRecovery, "fay@example.com")
		code := s.vfWaitCode(t, "fay@example.com", "recovery_code", 1)
		out := s.vfRecover(t, map[string]any{"address": "fay@example.com", "code": code})
		if len(out.UserErrors) > 0 || out.SessionToken == nil {
			t.Fatalf("recover: %+v", out)
		}
		// Without a new password other sessions stay, the password too.
		s.whoami(t, before)
		s.mustLogin(t, "fay@example.com", pw1)
		// The session is fresh: the password changes without the old one.
		r := s.gql(t, *out.SessionToken, `mutation($in: ChangePasswordInput!) { changeMyPassword(input: $in) { `+identFields+` } }`,
			map[string]any{"in": map[string]any{"newPassword": pw2}})
		if p := field[identityPayloadOut](t, r, "changeMyPassword"); len(r.Errors) > 0 || len(p.UserErrors) > 0 {
			t.Fatalf("changeMyPassword after recovery: %+v %+v", r.Errors, p.UserErrors)
		}
		s.mustLogin(t, "fay@example.com", pw2)
	})
}

func TestRecoveryRefusals(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		s.mustRegister(t, "gil@example.com", pw1)
		vfWantCode(t, "a short code without its address", s.vfRecover(t, map[string]any{"code": "123456"}).UserErrors, "VALIDATION_FAILED@/address")
		vfWantCode(t, "a code nobody asked for", s.vfRecover(t, map[string]any{"address": "gil@example.com", "code": "123456"}).UserErrors, "INVALID_CODE@/code")
		vfWantCode(t, "a long code nobody made", s.vfRecover(t, map[string]any{"code": strings.Repeat("A", 26)}).UserErrors, "INVALID_CODE@/code")

		// Two code checks in one request are refused before either runs.
		r := s.gql(t, "", `mutation { a: verifyAddress(input: {address: "gil@example.com", code: "1"}) { userErrors { code } }
			b: recoverAccount(input: {address: "gil@example.com", code: "1"}) { userErrors { code } } }`, nil)
		if r.code(0) != "BAD_USER_INPUT" {
			t.Errorf("two code checks in one request: %+v", r.Errors)
		}
	})
}

func TestRecoveryOfInactiveIdentity(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		_, id := s.mustRegister(t, "hal@example.com", pw1)
		setState := func(state string) {
			t.Helper()
			s.admin(t, `mutation($id: UUID!, $v: JSON) { patchIdentity(id: $id, patch: [{op: "replace", path: "/state", value: $v}]) { userErrors { code } } }`,
				map[string]any{"id": id, "v": state})
		}
		setState("inactive")
		disabled := s.vfRequest(t, vfRequestRecovery, "hal@example.com")
		unknown := s.vfRequest(t, vfRequestRecovery, "nobody-at-all@example.com")
		if !bytes.Equal(disabled.Body, unknown.Body) {
			t.Errorf("request for a disabled identity answered %s, for an unknown address %s", disabled.Body, unknown.Body)
		}
		code := s.vfWaitCode(t, "hal@example.com", "recovery_code", 1)
		out := s.vfRecover(t, map[string]any{"address": "hal@example.com", "code": code, "newPassword": pw2})
		vfWantCode(t, "recovery of a disabled identity", out.UserErrors, "ACCOUNT_DISABLED@<nil>")
		if out.Session != nil || out.SessionToken != nil {
			t.Error("a disabled identity recovered a session")
		}
		s.wantLoginFails(t, "hal@example.com", pw2, "INVALID_CREDENTIALS") // nothing changed
		// The code stayed unused: enabled again, the identity recovers.
		setState("active")
		if out := s.vfRecover(t, map[string]any{"address": "hal@example.com", "code": code, "newPassword": pw2}); len(out.UserErrors) > 0 || out.SessionToken == nil {
			t.Fatalf("recovery after enabling: %+v", out)
		}
		s.mustLogin(t, "hal@example.com", pw2)
	})
}

func TestRecoveryAdminCode(t *testing.T) {
	clock := &vfClock{}
	eachSelfService(t, func(c *Config) { c.now = clock.now }, func(t *testing.T, s *testServer, _ string) {
		_, id := s.mustRegister(t, "ida@example.com", pw1)
		type codeOut struct {
			Code       *string
			ExpiresAt  *time.Time
			UserErrors []userError
		}
		create := func(id string, expiresIn any) codeOut {
			t.Helper()
			r := s.admin(t, vfCreateCodeQuery, map[string]any{"id": id, "in": expiresIn})
			return field[codeOut](t, r, "createRecoveryCode")
		}
		out := create(id, nil)
		if len(out.UserErrors) > 0 || out.Code == nil || len(*out.Code) != 26 || out.ExpiresAt == nil {
			t.Fatalf("createRecoveryCode: %+v", out)
		}
		if d := out.ExpiresAt.Sub(clock.now()); d < 59*time.Minute || d > 61*time.Minute {
			t.Errorf("expires in %s, want the recovery lifespan (1h)", d)
		}
		// Handed over by phone and typed in lower case with dashes.
		typed := strings.ToLower((*out.Code)[:13] + "-" + (*out.Code)[13:])
		rec := s.vfRecover(t, map[string]any{"code": typed})
		if len(rec.UserErrors) > 0 || rec.SessionToken == nil || rec.Session.Identity.ID != id {
			t.Fatalf("recover with the admin's code: %+v", rec)
		}
		vfWantCode(t, "the admin's code again", s.vfRecover(t, map[string]any{"code": *out.Code}).UserErrors, "INVALID_CODE@/code")

		out = create(id, "2h")
		if d := out.ExpiresAt.Sub(clock.now()); d < 119*time.Minute || d > 121*time.Minute {
			t.Errorf("expiresIn 2h: expires in %s", d)
		}
		clock.advance(3 * time.Hour)
		vfWantCode(t, "an expired admin code", s.vfRecover(t, map[string]any{"code": *out.Code}).UserErrors, "INVALID_CODE@/code")

		for _, bad := range []string{"10s", "forever", "1000h"} {
			vfWantCode(t, "expiresIn "+bad, create(id, bad).UserErrors, "VALIDATION_FAILED@/expiresIn")
		}
		vfWantCode(t, "an unknown identity", create("0190c3b0-0000-7000-8000-000000000000", nil).UserErrors, "NOT_FOUND@<nil>")

		// Nobody but an admin makes one.
		token, _ := s.mustLogin(t, "ida@example.com", pw1)
		if r := s.gql(t, token, vfCreateCodeQuery, map[string]any{"id": id}); r.code(0) != "FORBIDDEN" {
			t.Errorf("createRecoveryCode with a session: %+v", r.Errors)
		}
	})
}

func TestInvitation(t *testing.T) {
	eachSelfService(t, func(c *Config) {
		c.Identity.Schemas = append(c.Identity.Schemas, schemas.Source{ID: "username", URL: "preset://username"})
	}, func(t *testing.T, s *testServer, _ string) {
		r := s.admin(t, vfInviteQuery, map[string]any{"in": map[string]any{"traits": map[string]any{"email": "ivan@example.com"}}})
		inv := field[identityPayloadOut](t, r, "inviteIdentity")
		if len(inv.UserErrors) > 0 || inv.Identity == nil {
			t.Fatalf("inviteIdentity: %+v", inv)
		}
		ms := s.vfMessages(t, "ivan@example.com")
		if len(ms) != 1 || ms[0].TemplateType != "invitation" {
			t.Fatalf("messages after the invitation: %+v (no verification code unless asked)", ms)
		}
		code := vfCodeIn(t, ms[0].Body, true)
		s.wantLoginFails(t, "ivan@example.com", pw1, "INVALID_CREDENTIALS") // no password yet

		// The code went to ivan@: given with another address, it fails.
		vfWantCode(t, "the invitation with another address",
			s.vfRecover(t, map[string]any{"address": "other@example.com", "code": code, "newPassword": pw1}).UserErrors, "INVALID_CODE@/code")
		out := s.vfRecover(t, map[string]any{"address": "ivan@example.com", "code": code, "newPassword": pw1})
		if len(out.UserErrors) > 0 || out.SessionToken == nil || out.Session.Identity.ID != inv.Identity.ID {
			t.Fatalf("accept the invitation: %+v", out)
		}
		token, _ := s.mustLogin(t, "ivan@example.com", pw1)
		if as := s.vfAddresses(t, token); len(as) != 1 || !as[0].Verified {
			t.Errorf("address after accepting: %+v", as)
		}
		vfWantCode(t, "the invitation again", s.vfRecover(t, map[string]any{"code": code, "newPassword": pw2}).UserErrors, "INVALID_CODE@/code")

		// No recovery address: nobody to invite, nothing created.
		r = s.admin(t, vfInviteQuery, map[string]any{"in": map[string]any{"schemaId": "username", "traits": map[string]any{"username": "nomail"}}})
		vfWantCode(t, "an invitation without a recovery address", field[identityPayloadOut](t, r, "inviteIdentity").UserErrors, "VALIDATION_FAILED@/traits")
		if n := s.identityCount(t, "nomail"); n != 0 {
			t.Errorf("a failed invitation created %d identities", n)
		}
	})
}

func TestVerificationAdminWritesMailOnlyWhenAsked(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		count := func(addr string) int { return len(vfOfTemplate(s.vfMessages(t, addr), "verification_code")) }
		create := func(in map[string]any) string {
			t.Helper()
			r := s.admin(t, `mutation($in: CreateIdentityInput!) { createIdentity(input: $in) { `+identFields+` } }`, map[string]any{"in": in})
			out := field[identityPayloadOut](t, r, "createIdentity")
			if len(out.UserErrors) > 0 {
				t.Fatalf("createIdentity: %+v", out.UserErrors)
			}
			return out.Identity.ID
		}
		quiet := create(map[string]any{"traits": map[string]any{"email": "quiet@example.com"}})
		create(map[string]any{"traits": map[string]any{"email": "told@example.com"}, "sendVerification": true})
		if count("quiet@example.com") != 0 || count("told@example.com") != 1 {
			t.Errorf("createIdentity: %d to quiet@ (want 0), %d to told@ (want 1)", count("quiet@example.com"), count("told@example.com"))
		}
		code := vfCodeIn(t, s.vfMessages(t, "told@example.com")[0].Body, false)
		if out := s.vfVerify(t, "told@example.com", code); out.Address == nil {
			t.Errorf("verify an admin-sent code: %+v", out)
		}

		r := s.admin(t, `mutation($in: [CreateIdentityInput!]!) { importIdentities(input: $in) { results { userErrors { code } } } }`,
			map[string]any{"in": []any{
				map[string]any{"traits": map[string]any{"email": "imported-told@example.com"}, "sendVerification": true},
				map[string]any{"traits": map[string]any{"email": "imported-quiet@example.com"}},
			}})
		if strings.Contains(string(r.Data), `"code"`) {
			t.Fatalf("import: %s", r.Data)
		}
		if count("imported-told@example.com") != 1 || count("imported-quiet@example.com") != 0 {
			t.Errorf("import: %d and %d messages, want 1 and 0", count("imported-told@example.com"), count("imported-quiet@example.com"))
		}

		update := func(id, email string, send bool) {
			t.Helper()
			in := map[string]any{"traits": map[string]any{"email": email}}
			if send {
				in["sendVerification"] = true
			}
			r := s.admin(t, `mutation($id: UUID!, $in: UpdateIdentityInput!) { updateIdentity(id: $id, input: $in) { userErrors { code } } }`,
				map[string]any{"id": id, "in": in})
			if strings.Contains(string(r.Data), `"code"`) {
				t.Fatalf("updateIdentity: %s", r.Data)
			}
		}
		update(quiet, "quiet2@example.com", false)
		s.admin(t, `mutation($id: UUID!) { patchIdentity(id: $id, patch: [{op: "replace", path: "/traits/email", value: "quiet3@example.com"}]) { userErrors { code } } }`,
			map[string]any{"id": quiet})
		if count("quiet2@example.com")+count("quiet3@example.com") != 0 {
			t.Error("an admin update or patch without sendVerification sent a code")
		}
		update(quiet, "quiet3@example.com", true)
		if count("quiet3@example.com") != 1 {
			t.Errorf("updateIdentity with sendVerification: %d messages, want 1", count("quiet3@example.com"))
		}
	})
}

func TestVerificationRequiredForLogin(t *testing.T) {
	eachSelfService(t, func(c *Config) { c.Selfservice.Flows.Login.RequireVerifiedAddress = true }, func(t *testing.T, s *testServer, _ string) {
		s.mustRegister(t, "jo@example.com", pw1)
		s.wantLoginFails(t, "jo@example.com", pw1, "ADDRESS_NOT_VERIFIED")
		// A wrong password is still just that.
		s.wantLoginFails(t, "jo@example.com", pw2, "INVALID_CREDENTIALS")
		code := s.vfWaitCode(t, "jo@example.com", "verification_code", 1)
		if out := s.vfVerify(t, "jo@example.com", code); out.Address == nil {
			t.Fatalf("verify: %+v", out)
		}
		s.mustLogin(t, "jo@example.com", pw1)
	})
}

// TestVerificationRequestsDoNotEnumerate: requests for a code answer byte
// for byte the same, with the same queries on the request path, whatever
// the address (unknown, unverified, verified, a disabled identity's), and
// take about the same time.
func TestVerificationRequestsDoNotEnumerate(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		s := newTestServer(t, dsn, func(c *Config) {
			vfRaisedThrottle(c)
			c.manualCodeRequests = true // nothing but the request runs queries
			c.Courier.Worker.Enabled = false
		})
		s.app.store.CountQueries()() // installs the hook while nothing runs
		s.mustRegister(t, "unverified@example.com", pw1)
		s.mustRegister(t, "verified@example.com", pw1)
		code := vfCodeIn(t, s.vfMessages(t, "verified@example.com")[0].Body, false)
		if out := s.vfVerify(t, "verified@example.com", code); out.Address == nil {
			t.Fatal(out)
		}
		_, disabled := s.mustRegister(t, "disabled@example.com", pw1)
		s.admin(t, `mutation($id: UUID!) { patchIdentity(id: $id, patch: [{op: "replace", path: "/state", value: "inactive"}]) { userErrors { code } } }`,
			map[string]any{"id": disabled})

		addresses := []string{"unknown@example.com", "unverified@example.com", "verified@example.com", "disabled@example.com"}
		for name, query := range map[string]string{"requestVerificationCode": vfRequestVerification, "requestRecoveryCode": vfRequestRecovery} {
			var bodies [][]byte
			var queries []int
			for _, a := range addresses {
				least := -1
				for range 3 { // the least of three: a stray background query cannot count
					stop := s.app.store.CountQueries()
					x := s.vfRequest(t, query, a)
					n := stop()
					if least < 0 || n < least {
						least = n
					}
					bodies = append(bodies, x.Body)
				}
				queries = append(queries, least)
			}
			for i, b := range bodies {
				if !bytes.Equal(b, bodies[0]) {
					t.Errorf("%s: answer %d is %s, answer 0 %s", name, i, b, bodies[0])
				}
			}
			for i, n := range queries {
				if n != queries[0] {
					t.Errorf("%s: %s cost %d queries, %s %d", name, addresses[i], n, addresses[0], queries[0])
				}
			}
		}
		// Resolved off the request path: only real, eligible addresses get
		// a code.
		for {
			n, err := s.app.sessions.ResolveCodeRequests(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		want := map[string][2]int{ // verification codes, recovery codes
			"unknown@example.com":    {0, 0},
			"unverified@example.com": {1 + 3, 3},
			"verified@example.com":   {1, 3},
			"disabled@example.com":   {1, 3}, // the one from register
		}
		for a, w := range want {
			ms := s.vfMessages(t, a)
			got := [2]int{len(vfOfTemplate(ms, "verification_code")), len(vfOfTemplate(ms, "recovery_code"))}
			if got != w {
				t.Errorf("%s: %v codes (verification, recovery), want %v", a, got, w)
			}
		}
	})
}

// TestVerificationRequestTiming compares the time a request for a code
// takes for an address that gets one and for an unknown one, with the
// background resolution running: the medians of many requests must be
// close. The tolerance is wide on purpose (shared CI machines); a request
// path that looked the address up and sent a message inline would still
// stand out on SQLite and PostgreSQL alike.
func TestVerificationRequestTiming(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		s := newTestServer(t, dsn, vfRaisedThrottle)
		s.mustRegister(t, "timed@example.com", pw1)
		const n = 40
		for name, query := range map[string]string{"requestVerificationCode": vfRequestVerification, "requestRecoveryCode": vfRequestRecovery} {
			var known, unknown []time.Duration
			for i := range 2 * n {
				addr := "timed@example.com"
				if i%2 == 1 {
					addr = "untimed@example.com"
				}
				start := time.Now()
				s.vfRequest(t, query, addr)
				d := time.Since(start)
				if i < 4 {
					continue // warm-up
				}
				if i%2 == 1 {
					unknown = append(unknown, d)
				} else {
					known = append(known, d)
				}
			}
			mk, mu := vfMedian(known), vfMedian(unknown)
			t.Logf("%s: median %s for a known address, %s for an unknown one", name, mk, mu)
			if diff := (mk - mu).Abs(); diff > max(mk, mu)/2 && diff > 3*time.Millisecond {
				t.Errorf("%s: medians %s (known) and %s (unknown) differ by more than half", name, mk, mu)
			}
		}
	})
}

func vfMedian(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// vfMailbox is a real SMTP server (emersion/go-smtp) on loopback that keeps
// what it receives.
type vfMailbox struct {
	addr  string
	mu    sync.Mutex
	mails [][]byte
}

func newVFMailbox(t *testing.T) *vfMailbox {
	t.Helper()
	box := &vfMailbox{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &vfMailSession{box: box}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	box.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return box
}

type vfMailSession struct{ box *vfMailbox }

func (s *vfMailSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *vfMailSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *vfMailSession) Reset()                               {}
func (s *vfMailSession) Logout() error                        { return nil }
func (s *vfMailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.box.mu.Lock()
	s.box.mails = append(s.box.mails, b)
	s.box.mu.Unlock()
	return nil
}

// waitText waits for a mail to to and returns its plain-text part, decoded.
func (b *vfMailbox) waitText(t *testing.T, to string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		b.mu.Lock()
		mails := slices.Clone(b.mails)
		b.mu.Unlock()
		for _, raw := range mails {
			m, err := mail.ReadMessage(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("a mail that does not parse: %v\n%s", err, raw)
			}
			if !strings.Contains(m.Header.Get("To"), to) {
				continue
			}
			return vfPlainText(t, m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"), m.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no mail to %s after 15s", to)
	return ""
}

// vfPlainText finds the text/plain part of a body of the given type.
func vfPlainText(t *testing.T, contentType, encoding string, body io.Reader) string {
	t.Helper()
	media, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		t.Fatalf("Content-Type %q: %v", contentType, err)
	}
	if strings.HasPrefix(media, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				t.Fatalf("no text/plain part: %v", err)
			}
			// multipart.Part decodes quoted-printable itself.
			if strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
				b, _ := io.ReadAll(p)
				return string(b)
			}
		}
	}
	if strings.EqualFold(encoding, "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	b, _ := io.ReadAll(body)
	return string(b)
}

// TestVerificationMailOverSMTP: register, the courier delivers the
// verification mail to a real SMTP server, the code read from the mail
// received verifies the address.
func TestVerificationMailOverSMTP(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		box := newVFMailbox(t)
		s := newTestServer(t, dsn, func(c *Config) {
			c.Courier.SMTP.ConnectionURI = "smtp://" + box.addr + "/?disable_starttls=true"
			c.Courier.SMTP.FromAddress = "no-reply@identityd.test"
		})
		s.mustRegister(t, "mailed@example.com", pw1)
		text := box.waitText(t, "mailed@example.com")
		code := vfCodeIn(t, text, false)
		if out := s.vfVerify(t, "mailed@example.com", code); out.Address == nil || !out.Address.Verified {
			t.Fatalf("verify with the mailed code: %+v", out)
		}
		// Recovery by mail too.
		s.vfRequest(t, vfRequestRecovery, "mailed@example.com")
		deadline := time.Now().Add(15 * time.Second)
		var recovery string
		for recovery == "" && time.Now().Before(deadline) {
			box.mu.Lock()
			mails := slices.Clone(box.mails)
			box.mu.Unlock()
			if len(mails) >= 2 {
				m, _ := mail.ReadMessage(bytes.NewReader(mails[1]))
				recovery = vfCodeIn(t, vfPlainText(t, m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"), m.Body), false)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if recovery == "" {
			t.Fatal("no recovery mail after 15s")
		}
		if out := s.vfRecover(t, map[string]any{"address": "mailed@example.com", "code": recovery, "newPassword": pw2}); out.SessionToken == nil {
			t.Fatalf("recover with the mailed code: %+v", out)
		}
		s.mustLogin(t, "mailed@example.com", pw2)
	})
}

func TestSecretsDefault(t *testing.T) {
	dir := t.TempDir()
	got, err := resolveSecrets(nil, "127.0.0.1:4455", dir)
	if err != nil || len(got) != 1 || !strings.HasPrefix(got[0], "idsec_") {
		t.Fatalf("loopback without a secret: %v %v", got, err)
	}
	st, err := os.Stat(filepath.Join(dir, secretFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v, want mode 0600", st, err)
	}
	if again, _ := resolveSecrets(nil, "[::1]:4455", dir); len(again) != 1 || again[0] != got[0] {
		t.Errorf("the generated secret changed between starts: %v, then %v", got, again)
	}
	if _, err := resolveSecrets(nil, "0.0.0.0:4455", dir); err == nil || !strings.Contains(err.Error(), "secrets.default") || !strings.Contains(err.Error(), "SECRETS_DEFAULT") {
		t.Errorf("non-loopback without a secret: %v, want a refusal naming secrets.default and SECRETS_DEFAULT", err)
	}
	if got, _ := resolveSecrets([]string{"new-secret-0123456789", "old-secret-0123456789"}, "0.0.0.0:1", dir); !slices.Equal(got, []string{"new-secret-0123456789", "old-secret-0123456789"}) {
		t.Errorf("configured secrets not used as they are: %v", got)
	}

	cfg, err := loadConfig("", func(k string) string {
		return map[string]string{"SECRETS_DEFAULT": "a-secret-0123456789,b-secret-0123456789"}[k]
	})
	if err != nil || !slices.Equal(cfg.Secrets.Default, []string{"a-secret-0123456789", "b-secret-0123456789"}) {
		t.Errorf("SECRETS_DEFAULT: %v %v", cfg.Secrets.Default, err)
	}
	if _, err := loadConfig("", func(k string) string { return map[string]string{"SECRETS_DEFAULT": "short"}[k] }); err == nil || !strings.Contains(err.Error(), "secrets.default[0]") {
		t.Errorf("a short secret: %v, want an error naming secrets.default[0]", err)
	}
}

func TestVerificationConfigKeys(t *testing.T) {
	cfg := defaultConfig()
	f := cfg.Selfservice.Flows
	if f.Verification.Lifespan != Duration(time.Hour) || f.Recovery.Lifespan != Duration(time.Hour) ||
		f.Invitation.Lifespan != Duration(168*time.Hour) || f.Login.RequireVerifiedAddress ||
		cfg.Selfservice.Codes.Length != 6 || cfg.Selfservice.Codes.MaxAttempts != 5 {
		t.Errorf("defaults: %+v %+v", f, cfg.Selfservice.Codes)
	}
	env := map[string]string{
		"SELFSERVICE_FLOWS_VERIFICATION_LIFESPAN":               "30m",
		"SELFSERVICE_FLOWS_RECOVERY_LIFESPAN":                   "15m",
		"SELFSERVICE_FLOWS_INVITATION_LIFESPAN":                 "72h",
		"SELFSERVICE_FLOWS_LOGIN_REQUIRE_VERIFIED_ADDRESS":      "true",
		"SELFSERVICE_CODES_LENGTH":                              "8",
		"SELFSERVICE_CODES_MAX_ATTEMPTS":                        "3",
		"SELFSERVICE_CODES_THROTTLE_FREE_PER_IDENTIFIER":        "7",
		"SELFSERVICE_CODES_THROTTLE_IDENTIFIER_MAX_DELAY":       "2m",
		"SELFSERVICE_FLOWS_SETTINGS_PRIVILEGED_SESSION_MAX_AGE": "10m",
	}
	cfg, err := loadConfig("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	f = cfg.Selfservice.Flows
	if f.Verification.Lifespan != Duration(30*time.Minute) || f.Recovery.Lifespan != Duration(15*time.Minute) ||
		f.Invitation.Lifespan != Duration(72*time.Hour) || !f.Login.RequireVerifiedAddress ||
		cfg.Selfservice.Codes.Length != 8 || cfg.Selfservice.Codes.MaxAttempts != 3 ||
		cfg.Selfservice.Codes.Throttle.FreePerIdentifier != 7 || cfg.Selfservice.Codes.Throttle.IdentifierMaxDelay != Duration(2*time.Minute) {
		t.Errorf("from env: %+v %+v", f, cfg.Selfservice.Codes)
	}
	for key, val := range map[string]string{
		"SELFSERVICE_CODES_LENGTH":                "4",
		"SELFSERVICE_CODES_MAX_ATTEMPTS":          "0",
		"SELFSERVICE_FLOWS_RECOVERY_LIFESPAN":     "1s",
		"SELFSERVICE_CODES_THROTTLE_WINDOW":       "0s",
		"SELFSERVICE_FLOWS_INVITATION_LIFESPAN":   "soon",
		"SELFSERVICE_FLOWS_VERIFICATION_LIFESPAN": "10s",
	} {
		want := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(key, "SELFSERVICE_"), "_", "."))
		_, err := loadConfig("", func(k string) string { return map[string]string{key: val}[k] })
		if err == nil {
			t.Errorf("%s=%s accepted", key, val)
			continue
		}
		// The message names the key (its dots may be underscores in a
		// key's own name, as in max_attempts).
		if !strings.Contains(strings.ReplaceAll(err.Error(), "_", "."), want) {
			t.Errorf("%s=%s: %v, want the key named", key, val, err)
		}
	}
}

// TestVerificationSecretRotation: a code made under the old secret still
// checks once a new one is put first, and no longer once the old one is
// dropped.
func TestVerificationSecretRotation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		const oldSecret, newSecret = "old-secret-0123456789abcdef", "new-secret-0123456789abcdef"
		with := func(secrets ...string) *testServer {
			return newTestServer(t, dsn, func(c *Config) { c.Secrets.Default = secrets })
		}
		before := with(oldSecret)
		before.mustRegister(t, "rot1@example.com", pw1)
		before.mustRegister(t, "rot2@example.com", pw1)
		code1 := vfCodeIn(t, before.vfMessages(t, "rot1@example.com")[0].Body, false)
		code2 := vfCodeIn(t, before.vfMessages(t, "rot2@example.com")[0].Body, false)

		rotated := with(newSecret, oldSecret)
		if out := rotated.vfVerify(t, "rot1@example.com", code1); out.Address == nil {
			t.Errorf("an old secret's code after rotation: %+v", out)
		}
		dropped := with(newSecret)
		vfWantCode(t, "an old secret's code once it is dropped", dropped.vfVerify(t, "rot2@example.com", code2).UserErrors, "INVALID_CODE@/code")
	})
}

// TestVerificationBySMS: a verifiable phone number gets its code as an SMS
// and is verified in any spelling of the number.
func TestVerificationBySMS(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		s := newTestServer(t, dsn, func(c *Config) {
			c.Identity.Schemas = append(c.Identity.Schemas, schemas.Source{ID: "sms", URL: "preset://sms"})
		})
		out := s.register(t, map[string]any{"schemaId": "sms", "traits": map[string]any{"phone_number": "+1 415 555 2671"}, "password": pw1})
		if len(out.UserErrors) > 0 {
			t.Fatalf("register: %+v", out.UserErrors)
		}
		ms := s.vfMessages(t, "+14155552671")
		if len(ms) != 1 || ms[0].Subject != nil {
			t.Fatalf("messages to the phone: %+v, want one SMS", ms)
		}
		code := vfCodeIn(t, ms[0].Body, false)
		v := s.vfVerify(t, "+1 (415) 555-2671", code)
		if v.Address == nil || v.Address.Via != "sms" || v.Address.Value != "+14155552671" || !v.Address.Verified {
			t.Fatalf("verify the phone: %+v", v)
		}
	})
}
