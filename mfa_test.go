package main

import (
	"bytes"
	"encoding/base64"
	"image/png"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db/dbtest"
)

// The multi-factor tests (issue 14) talk to the real server over HTTP on
// both databases. TOTP codes are computed here, with pquerna/otp, at the
// server's clock (an mfaClock that only moves when a test moves it), and
// every response of every test is searched for the secrets the test learnt
// (mfaEach's check).

// TestMFATotpSignIn: sign up, set up an authenticator app, confirm it; a
// later password sign-in gives an AAL1 session that may do nothing but
// finish (loginSecondFactor) or log out, and finishing lifts that same
// session to AAL2.
func TestMFATotpSignIn(t *testing.T) {
	mfaEach(t, nil, func(t *testing.T, e *mfaEnv) {
		token, id := e.register(t, "alice@example.com")

		setup := e.setupTotp(t, token)
		secret, uri, qr := *setup.Secret, *setup.URI, *setup.QRCodePng
		if key, err := mfaSecretKey(secret); err != nil || len(key) < 16 {
			t.Errorf("secret %q: %d bytes, error %v: want base32 of at least 128 bits", secret, len(key), err)
		}
		if !strings.HasPrefix(uri, "otpauth://totp/identityd:") {
			t.Errorf("uri %q, want otpauth://totp/identityd:…", uri)
		}
		if u, err := url.Parse(uri); err != nil {
			t.Errorf("uri %q: %v", uri, err)
		} else {
			q := u.Query()
			if u.Path != "/identityd:alice@example.com" {
				t.Errorf("uri label %q, want identityd:alice@example.com", u.Path)
			}
			if q.Get("issuer") != "identityd" {
				t.Errorf("uri issuer %q, want identityd", q.Get("issuer"))
			}
			if !strings.EqualFold(strings.TrimRight(q.Get("secret"), "="), strings.TrimRight(secret, "=")) {
				t.Errorf("uri secret %q, want the secret %q", q.Get("secret"), secret)
			}
			for k, want := range map[string]string{"algorithm": "SHA1", "digits": "6", "period": "30"} {
				if v := q.Get(k); v != "" && v != want {
					t.Errorf("uri %s=%q, want %q", k, v, want)
				}
			}
		}
		if b64, ok := strings.CutPrefix(qr, "data:image/png;base64,"); !ok {
			t.Errorf("qrCodePng %.40q…, want a data:image/png;base64 URL", qr)
		} else if raw, err := base64.StdEncoding.DecodeString(b64); err != nil {
			t.Errorf("qrCodePng: not base64: %v", err)
		} else if img, err := png.Decode(bytes.NewReader(raw)); err != nil {
			t.Errorf("qrCodePng: not a PNG: %v", err)
		} else if b := img.Bounds(); b.Dx() < 21 || b.Dy() < 21 {
			t.Errorf("qrCodePng is %dx%d, too small for a QR code", b.Dx(), b.Dy())
		}

		// A pending secret is not a second factor yet.
		me := e.whoami(t, token)
		if me.AAL != "AAL1" || me.Identity.AvailableAAL != "AAL1" || me.Identity.SecondFactors.TOTP || me.Identity.SecondFactors.TOTPSetUpAt != nil {
			t.Errorf("before confirmTotp: aal %s availableAal %s secondFactors %+v, want AAL1, AAL1, no TOTP", me.AAL, me.Identity.AvailableAAL, me.Identity.SecondFactors)
		}

		out := e.confirmTotp(t, token, e.wrongCode(t, secret))
		mfaWantUserErrors(t, "confirmTotp with a wrong code", out.UserErrors, "INVALID_CODE@/code")
		if out.Identity != nil {
			t.Errorf("confirmTotp with a wrong code answered an identity: %+v", out.Identity)
		}

		e.clock.advance(time.Second)
		confirmedAt := e.clock.now()
		out = e.confirmTotp(t, token, e.code(t, secret, 0))
		mfaWantUserErrors(t, "confirmTotp with the right code", out.UserErrors)
		if out.Identity == nil {
			t.Fatal("confirmTotp with the right code: no identity")
		}
		sf := out.Identity.SecondFactors
		if !sf.TOTP || sf.TOTPSetUpAt == nil || !mfaNear(*sf.TOTPSetUpAt, confirmedAt) || out.Identity.AvailableAAL != "AAL2" || out.Identity.ID != id {
			t.Errorf("after confirmTotp: identity %s availableAal %s secondFactors %+v, want %s, AAL2, TOTP set up at %s", out.Identity.ID, out.Identity.AvailableAAL, sf, id, confirmedAt)
		}
		me = e.whoami(t, token)
		if got := methodNames(me.AuthenticationMethods); me.AAL != "AAL2" || !slices.Equal(got, []string{"PASSWORD/AAL1", "TOTP/AAL2"}) {
			t.Errorf("the confirming session: aal %s methods %v, want AAL2 [PASSWORD/AAL1 TOTP/AAL2]", me.AAL, got)
		}
		if ms := me.AuthenticationMethods; len(ms) == 2 && (ms[1].CompletedAt.Before(ms[0].CompletedAt) || !mfaNear(ms[1].CompletedAt, confirmedAt)) {
			t.Errorf("TOTP completedAt %s, want %s (after the password's %s)", ms[1].CompletedAt, confirmedAt, ms[0].CompletedAt)
		}

		// A password alone now makes a session that must finish first.
		e.clock.advance(time.Minute)
		tok2, sess2 := e.login(t, "alice@example.com")
		if sess2.Identity.AvailableAAL != "AAL2" {
			t.Errorf("login: identity availableAal %s, want AAL2", sess2.Identity.AvailableAAL)
		}
		e.wantAAL2Required(t, "an AAL1 session", tok2)
		mfaWantTopLevel(t, "mySessions at AAL1", e.call(t, "mySessions", tok2, `{ mySessions { id } }`, nil), "mySessions", "SESSION_AAL2_REQUIRED")
		mfaWantTopLevel(t, "updateMyTraits at AAL1",
			e.call(t, "updateMyTraits", tok2, `mutation { updateMyTraits(traits: {email: "mallory@example.com"}) { identity { id } userErrors { code } } }`, nil),
			"updateMyTraits", "SESSION_AAL2_REQUIRED")
		mfaWantTopLevel(t, "setupTotp at AAL1", e.setupTotpRaw(t, tok2), "setupTotp", "SESSION_AAL2_REQUIRED")
		mfaWantTopLevel(t, "generateLookupSecrets at AAL1", e.generateLookupRaw(t, tok2), "generateLookupSecrets", "SESSION_AAL2_REQUIRED")
		// Admin calls are unaffected.
		if got := e.adminIdentity(t, id); got.AvailableAAL != "AAL2" || !got.SecondFactors.TOTP {
			t.Errorf("admin identity: availableAal %s secondFactors %+v", got.AvailableAAL, got.SecondFactors)
		}

		// An AAL1 session may still log out. (The refused updateMyTraits
		// changed nothing: the old email still signs in.)
		tok3, _ := e.login(t, "alice@example.com")
		x := e.call(t, "logout", tok3, mfaLogoutQuery, nil)
		mfaNoTopLevel(t, "logout at AAL1", x)
		if out := field[struct{ UserErrors []userError }](t, x.gqlResponse, "logout"); len(out.UserErrors) > 0 {
			t.Errorf("logout at AAL1: %v", codePaths(out.UserErrors))
		}
		e.wantUnauthenticated(t, "after logout", tok3)

		// The second factor lifts the same session, token and all.
		e.clock.advance(mfaStep)
		finishedAt := e.clock.now()
		lifted := e.lift(t, tok2, map[string]any{"totpCode": e.code(t, secret, 0)})
		if got := methodNames(lifted.AuthenticationMethods); lifted.ID != sess2.ID || !slices.Equal(got, []string{"PASSWORD/AAL1", "TOTP/AAL2"}) {
			t.Errorf("loginSecondFactor: session %s methods %v, want the same session %s with [PASSWORD/AAL1 TOTP/AAL2]", lifted.ID, got, sess2.ID)
		}
		if ms := lifted.AuthenticationMethods; len(ms) == 2 && !mfaNear(ms[1].CompletedAt, finishedAt) {
			t.Errorf("TOTP completedAt %s, want %s", ms[1].CompletedAt, finishedAt)
		}
		me = e.whoami(t, tok2)
		if got := methodNames(me.AuthenticationMethods); me.ID != sess2.ID || me.AAL != "AAL2" || !slices.Equal(got, []string{"PASSWORD/AAL1", "TOTP/AAL2"}) {
			t.Errorf("whoami after loginSecondFactor: session %s aal %s methods %v, want %s AAL2", me.ID, me.AAL, got, sess2.ID)
		}
		mfaNoTopLevel(t, "mySessions at AAL2", e.call(t, "mySessions", tok2, `{ mySessions { id } }`, nil))
		if me := e.whoami(t, token); me.AAL != "AAL2" {
			t.Errorf("the first session: aal %s, want AAL2 still", me.AAL)
		}
	})
}

// TestMFATotpReplayAndSkew: a code is accepted once (also the one that
// confirmed the app), codes one step off either way are accepted, two steps
// off are not, and a step older than the last one used never is.
func TestMFATotpReplayAndSkew(t *testing.T) {
	mfaEach(t, nil, func(t *testing.T, e *mfaEnv) {
		t.Run("replay", func(t *testing.T) {
			token, _ := e.register(t, "replay@example.com")
			secret := e.enroll(t, token)
			tokA, _ := e.login(t, "replay@example.com")
			e.wantInvalidCode(t, "the code that confirmed the app", tokA, map[string]any{"totpCode": e.code(t, secret, 0)}, "/totpCode")

			e.clock.advance(mfaStep)
			code := e.code(t, secret, 0)
			e.lift(t, tokA, map[string]any{"totpCode": code})
			tokB, _ := e.login(t, "replay@example.com")
			e.wantInvalidCode(t, "a code used by another session", tokB, map[string]any{"totpCode": code}, "/totpCode")
			e.wantAAL2Required(t, "after a replayed code", tokB)
		})
		t.Run("skew", func(t *testing.T) {
			token, _ := e.register(t, "skew@example.com")
			secret := e.enroll(t, token)

			e.clock.advance(3 * mfaStep)
			tok, _ := e.login(t, "skew@example.com")
			e.lift(t, tok, map[string]any{"totpCode": e.code(t, secret, -mfaStep)})

			e.clock.advance(3 * mfaStep)
			tok, _ = e.login(t, "skew@example.com")
			e.lift(t, tok, map[string]any{"totpCode": e.code(t, secret, mfaStep)})

			e.clock.advance(10 * mfaStep)
			tok, _ = e.login(t, "skew@example.com")
			e.wantInvalidCode(t, "a code three steps ahead", tok, map[string]any{"totpCode": e.code(t, secret, 3*mfaStep)}, "/totpCode")
			e.wantInvalidCode(t, "a code three steps old", tok, map[string]any{"totpCode": e.code(t, secret, -3*mfaStep)}, "/totpCode")
			e.wantAAL2Required(t, "after codes out of the window", tok)
			e.lift(t, tok, map[string]any{"totpCode": e.code(t, secret, 0)})

			// The previous step is within the skew but older than the one
			// just used: refused; the next one is newer: accepted.
			tok, _ = e.login(t, "skew@example.com")
			e.wantInvalidCode(t, "a step older than the last used", tok, map[string]any{"totpCode": e.code(t, secret, -mfaStep)}, "/totpCode")
			e.lift(t, tok, map[string]any{"totpCode": e.code(t, secret, mfaStep)})
		})
	})
}

// TestMFARequiredAAL1: under session.whoami.required_aal aal1 an AAL1
// session of an identity with a second factor works, and may still finish
// with loginSecondFactor.
func TestMFARequiredAAL1(t *testing.T) {
	mfaEach(t, func(c *Config) { c.Session.Whoami.RequiredAAL = "aal1" }, func(t *testing.T, e *mfaEnv) {
		token, _ := e.register(t, "relaxed@example.com")
		secret := e.enroll(t, token)
		tok2, sess2 := e.login(t, "relaxed@example.com")
		me := e.whoami(t, tok2)
		if got := methodNames(me.AuthenticationMethods); me.ID != sess2.ID || me.AAL != "AAL1" || me.Identity.AvailableAAL != "AAL2" || !slices.Equal(got, []string{"PASSWORD/AAL1"}) {
			t.Errorf("whoami at AAL1: session %s aal %s availableAal %s methods %v, want %s AAL1 AAL2 [PASSWORD/AAL1]", me.ID, me.AAL, me.Identity.AvailableAAL, got, sess2.ID)
		}
		mfaNoTopLevel(t, "mySessions at AAL1", e.call(t, "mySessions", tok2, `{ mySessions { id } }`, nil))

		e.clock.advance(mfaStep)
		lifted := e.lift(t, tok2, map[string]any{"totpCode": e.code(t, secret, 0)})
		if lifted.ID != sess2.ID {
			t.Errorf("loginSecondFactor made session %s, want %s lifted", lifted.ID, sess2.ID)
		}
		if me := e.whoami(t, tok2); me.AAL != "AAL2" || !slices.Equal(methodNames(me.AuthenticationMethods), []string{"PASSWORD/AAL1", "TOTP/AAL2"}) {
			t.Errorf("whoami after loginSecondFactor: aal %s methods %v", me.AAL, methodNames(me.AuthenticationMethods))
		}
	})
}

// TestMFALookupSecrets: twelve distinct codes, each working once whatever
// its spelling; a new set replaces the old one; removing them leaves none.
func TestMFALookupSecrets(t *testing.T) {
	mfaEach(t, nil, func(t *testing.T, e *mfaEnv) {
		token, _ := e.register(t, "backup@example.com")
		generatedAt := e.clock.now()
		codes := e.generateLookup(t, token)
		if len(codes) != 12 {
			t.Fatalf("%d codes, want 12", len(codes))
		}
		seen := map[string]bool{}
		for _, c := range codes {
			bare := strings.ToLower(strings.ReplaceAll(c, "-", ""))
			if len(bare) != 10 || seen[bare] {
				t.Errorf("code %q: want ten characters, distinct from the others", c)
			}
			seen[bare] = true
		}
		// The secrets are its second factor from now on, and this session
		// has just shown it holds them.
		me := e.whoami(t, token)
		sf := me.Identity.SecondFactors
		if me.AAL != "AAL2" || me.Identity.AvailableAAL != "AAL2" || sf.TOTP || sf.LookupSecretsRemaining == nil || *sf.LookupSecretsRemaining != 12 ||
			sf.LookupSecretsGeneratedAt == nil || !mfaNear(*sf.LookupSecretsGeneratedAt, generatedAt) {
			t.Errorf("after generateLookupSecrets: aal %s availableAal %s secondFactors %+v, want AAL2 AAL2 and 12 left", me.AAL, me.Identity.AvailableAAL, sf)
		}

		remaining := func(t *testing.T, token string, want int) {
			t.Helper()
			if got := e.whoami(t, token).Identity.SecondFactors.LookupSecretsRemaining; got == nil || *got != want {
				t.Errorf("lookupSecretsRemaining %v, want %d", got, want)
			}
		}
		tok2, sess2 := e.login(t, "backup@example.com")
		e.wantAAL2Required(t, "lookup secrets are a second factor", tok2)
		lifted := e.lift(t, tok2, map[string]any{"lookupSecret": codes[0]})
		if got := methodNames(lifted.AuthenticationMethods); lifted.ID != sess2.ID || !slices.Equal(got, []string{"PASSWORD/AAL1", "LOOKUP_SECRET/AAL2"}) {
			t.Errorf("loginSecondFactor(lookupSecret): session %s methods %v, want %s [PASSWORD/AAL1 LOOKUP_SECRET/AAL2]", lifted.ID, got, sess2.ID)
		}
		remaining(t, tok2, 11)

		tok3, _ := e.login(t, "backup@example.com")
		e.wantInvalidCode(t, "a used code", tok3, map[string]any{"lookupSecret": codes[0]}, "/lookupSecret")
		e.wantInvalidCode(t, "a used code, spelt otherwise", tok3,
			map[string]any{"lookupSecret": strings.ToUpper(strings.ReplaceAll(codes[0], "-", ""))}, "/lookupSecret")
		// Case, spaces and hyphens do not matter.
		e.lift(t, tok3, map[string]any{"lookupSecret": " " + strings.ToUpper(strings.ReplaceAll(codes[1], "-", "")) + " "})
		remaining(t, tok3, 10)
		tok4, _ := e.login(t, "backup@example.com")
		e.wantInvalidCode(t, "a code used in another spelling", tok4, map[string]any{"lookupSecret": codes[1]}, "/lookupSecret")

		// A new set replaces the old one.
		fresh := e.generateLookup(t, tok3)
		if len(fresh) != 12 {
			t.Fatalf("second set: %d codes, want 12", len(fresh))
		}
		for _, c := range fresh {
			if seen[strings.ToLower(strings.ReplaceAll(c, "-", ""))] {
				t.Errorf("the new set repeats %q", c)
			}
		}
		remaining(t, tok3, 12)
		e.wantInvalidCode(t, "an unused code of the old set", tok4, map[string]any{"lookupSecret": codes[2]}, "/lookupSecret")
		e.lift(t, tok4, map[string]any{"lookupSecret": fresh[0]})
		remaining(t, tok4, 11)

		x := e.identityMutation(t, "removeLookupSecrets", tok4, mfaRemoveLookupQuery)
		out := mfaIdentityPayload(t, "removeLookupSecrets", x)
		mfaWantUserErrors(t, "removeLookupSecrets", out.UserErrors)
		if out.Identity == nil || out.Identity.SecondFactors.LookupSecretsRemaining != nil || out.Identity.SecondFactors.LookupSecretsGeneratedAt != nil || out.Identity.AvailableAAL != "AAL1" {
			t.Errorf("after removeLookupSecrets: %+v, want no lookup secrets and AAL1 available", out.Identity)
		}
		tok5, _ := e.login(t, "backup@example.com")
		if me := e.whoami(t, tok5); me.AAL != "AAL1" || me.Identity.SecondFactors.LookupSecretsRemaining != nil {
			t.Errorf("a password session without second factors: aal %s secondFactors %+v", me.AAL, me.Identity.SecondFactors)
		}
		out2 := e.secondFactor(t, tok5, map[string]any{"lookupSecret": fresh[1]})
		mfaWantCodes(t, "a code after removeLookupSecrets", out2.UserErrors, "NOT_FOUND")
		out = mfaIdentityPayload(t, "removeLookupSecrets", e.identityMutation(t, "removeLookupSecrets", tok4, mfaRemoveLookupQuery))
		mfaWantCodes(t, "removeLookupSecrets with none left", out.UserErrors, "NOT_FOUND")
	})
}

// TestMFAManagementRules: who may set up, remove and use second factors:
// the privileged window, AAL2 for an identity that has one, one app each,
// exactly one field to loginSecondFactor.
func TestMFAManagementRules(t *testing.T) {
	mfaEach(t, func(c *Config) { c.Session.Whoami.RequiredAAL = "aal1" }, func(t *testing.T, e *mfaEnv) {
		token, _ := e.register(t, "rules@example.com")
		out := e.confirmTotp(t, token, "123456")
		mfaWantCodes(t, "confirmTotp without setupTotp", out.UserErrors, "NOT_FOUND")

		// A second setupTotp replaces the pending secret.
		first := *e.setupTotp(t, token).Secret
		second := *e.setupTotp(t, token).Secret
		if first == second {
			t.Fatalf("two setups gave the same secret %q", first)
		}
		if c1, c2 := e.code(t, first, 0), e.code(t, second, 0); c1 != c2 {
			out = e.confirmTotp(t, token, c1)
			mfaWantUserErrors(t, "confirmTotp with the replaced secret's code", out.UserErrors, "INVALID_CODE@/code")
		}
		out = e.confirmTotp(t, token, e.code(t, second, 0))
		mfaWantUserErrors(t, "confirmTotp", out.UserErrors)
		secret := second

		x := e.setupTotpRaw(t, token)
		mfaNoTopLevel(t, "setupTotp with an app set up", x)
		if got := field[mfaTotpSetupOut](t, x.gqlResponse, "setupTotp"); got.Secret != nil || got.URI != nil || got.QRCodePng != nil {
			t.Errorf("setupTotp with an app set up gave a secret: %s", x.Body)
		} else {
			mfaWantCodes(t, "setupTotp with an app set up", got.UserErrors, "CONFLICT")
		}

		// An AAL1 session manages nothing of an identity with a second
		// factor, although whoami answers it under required_aal aal1.
		tok2, _ := e.login(t, "rules@example.com")
		mfaWantTopLevel(t, "removeTotp at AAL1", e.identityMutation(t, "removeTotp", tok2, mfaRemoveTotpQuery), "removeTotp", "SESSION_AAL2_REQUIRED")
		mfaWantTopLevel(t, "generateLookupSecrets at AAL1", e.generateLookupRaw(t, tok2), "generateLookupSecrets", "SESSION_AAL2_REQUIRED")
		if me := e.whoami(t, tok2); me.AAL != "AAL1" || !me.Identity.SecondFactors.TOTP || me.Identity.SecondFactors.LookupSecretsRemaining != nil {
			t.Errorf("after refused changes: aal %s secondFactors %+v, want AAL1 and the TOTP app only", me.AAL, me.Identity.SecondFactors)
		}

		for _, tc := range []struct {
			name string
			in   map[string]any
		}{
			{"neither field", map[string]any{}},
			{"both fields", map[string]any{"totpCode": e.code(t, secret, 0), "lookupSecret": "abcde-fghij"}},
		} {
			got := e.secondFactor(t, tok2, tc.in)
			mfaWantCodes(t, "loginSecondFactor with "+tc.name, got.UserErrors, "VALIDATION_FAILED")
			if got.Session != nil {
				t.Errorf("loginSecondFactor with %s answered a session", tc.name)
			}
		}
		got := e.secondFactor(t, tok2, map[string]any{"lookupSecret": "abcde-fghij"})
		mfaWantCodes(t, "a lookup secret when the identity has none", got.UserErrors, "NOT_FOUND")
		if me := e.whoami(t, tok2); me.AAL != "AAL1" {
			t.Errorf("after refused loginSecondFactor calls: aal %s, want AAL1", me.AAL)
		}
		mfaWantTopLevel(t, "loginSecondFactor without a session",
			e.call(t, "loginSecondFactor", "", mfaSecondFactorQuery, map[string]any{"in": map[string]any{"totpCode": "123456"}}),
			"loginSecondFactor", "UNAUTHENTICATED")

		// Past the privileged window even an AAL2 session must sign in again.
		e.clock.advance(16 * time.Minute)
		out = mfaIdentityPayload(t, "removeTotp", e.identityMutation(t, "removeTotp", token, mfaRemoveTotpQuery))
		mfaWantCodes(t, "removeTotp by an old AAL2 session", out.UserErrors, "REAUTHENTICATION_REQUIRED")
		x = e.generateLookupRaw(t, token)
		mfaNoTopLevel(t, "generateLookupSecrets by an old AAL2 session", x)
		if lk := field[mfaLookupOut](t, x.gqlResponse, "generateLookupSecrets"); lk.Codes != nil {
			t.Errorf("generateLookupSecrets by an old session gave codes")
		} else {
			mfaWantCodes(t, "generateLookupSecrets by an old AAL2 session", lk.UserErrors, "REAUTHENTICATION_REQUIRED")
		}
		tok3, _ := e.login(t, "rules@example.com")
		e.lift(t, tok3, map[string]any{"totpCode": e.code(t, secret, 0)})
		out = mfaIdentityPayload(t, "removeTotp", e.identityMutation(t, "removeTotp", tok3, mfaRemoveTotpQuery))
		mfaWantUserErrors(t, "removeTotp by a fresh AAL2 session", out.UserErrors)
		if out.Identity == nil || out.Identity.SecondFactors.TOTP || out.Identity.SecondFactors.TOTPSetUpAt != nil || out.Identity.AvailableAAL != "AAL1" {
			t.Errorf("after removeTotp: %+v, want no TOTP and AAL1 available", out.Identity)
		}
		out = mfaIdentityPayload(t, "removeTotp", e.identityMutation(t, "removeTotp", tok3, mfaRemoveTotpQuery))
		mfaWantCodes(t, "removeTotp without an app", out.UserErrors, "NOT_FOUND")
		got = e.secondFactor(t, tok2, map[string]any{"totpCode": e.code(t, secret, mfaStep)})
		mfaWantCodes(t, "a TOTP code after removeTotp", got.UserErrors, "NOT_FOUND")

		// An identity without any second factor.
		bob, _ := e.register(t, "bob@example.com")
		for _, in := range []map[string]any{{"totpCode": "123456"}, {"lookupSecret": "abcde-fghij"}} {
			got := e.secondFactor(t, bob, in)
			mfaWantCodes(t, "loginSecondFactor without a second factor", got.UserErrors, "NOT_FOUND")
		}
		e.clock.advance(16 * time.Minute)
		x = e.setupTotpRaw(t, bob)
		mfaNoTopLevel(t, "setupTotp by an old session", x)
		if st := field[mfaTotpSetupOut](t, x.gqlResponse, "setupTotp"); st.Secret != nil || st.URI != nil || st.QRCodePng != nil {
			t.Errorf("setupTotp by an old session gave a secret: %s", x.Body)
		} else {
			mfaWantCodes(t, "setupTotp by an old session", st.UserErrors, "REAUTHENTICATION_REQUIRED")
		}
		x = e.generateLookupRaw(t, bob)
		mfaNoTopLevel(t, "generateLookupSecrets by an old session", x)
		mfaWantCodes(t, "generateLookupSecrets by an old session", field[mfaLookupOut](t, x.gqlResponse, "generateLookupSecrets").UserErrors, "REAUTHENTICATION_REQUIRED")

		// A pending secret lasts the privileged window.
		bob2, _ := e.login(t, "bob@example.com")
		pending := *e.setupTotp(t, bob2).Secret
		e.clock.advance(16 * time.Minute)
		out = e.confirmTotp(t, bob2, e.code(t, pending, 0))
		mfaWantCodes(t, "confirmTotp after the pending secret expired", out.UserErrors, "NOT_FOUND")
		if me := e.whoami(t, bob2); me.Identity.SecondFactors.TOTP || me.Identity.AvailableAAL != "AAL1" {
			t.Errorf("an expired setup was confirmed: %+v", me.Identity)
		}
	})
}

// TestMFAMethodConfig: the methods can be turned off, and the issuer named.
func TestMFAMethodConfig(t *testing.T) {
	t.Run("disabled", func(t *testing.T) {
		mfaEach(t, func(c *Config) {
			c.Selfservice.Methods.TOTP.Enabled = false
			c.Selfservice.Methods.LookupSecret.Enabled = false
		}, func(t *testing.T, e *mfaEnv) {
			token, _ := e.register(t, "off@example.com")
			x := e.setupTotpRaw(t, token)
			mfaNoTopLevel(t, "setupTotp", x)
			if st := field[mfaTotpSetupOut](t, x.gqlResponse, "setupTotp"); st.Secret != nil {
				t.Errorf("setupTotp while disabled gave a secret")
			} else {
				mfaWantCodes(t, "setupTotp while disabled", st.UserErrors, "METHOD_DISABLED")
			}
			x = e.generateLookupRaw(t, token)
			mfaNoTopLevel(t, "generateLookupSecrets", x)
			if lk := field[mfaLookupOut](t, x.gqlResponse, "generateLookupSecrets"); lk.Codes != nil {
				t.Errorf("generateLookupSecrets while disabled gave codes")
			} else {
				mfaWantCodes(t, "generateLookupSecrets while disabled", lk.UserErrors, "METHOD_DISABLED")
			}
			if me := e.whoami(t, token); me.Identity.AvailableAAL != "AAL1" {
				t.Errorf("availableAal %s, want AAL1", me.Identity.AvailableAAL)
			}
		})
	})
	t.Run("issuer", func(t *testing.T) {
		mfaEach(t, func(c *Config) { c.Selfservice.Methods.TOTP.Config.Issuer = "Example Co" }, func(t *testing.T, e *mfaEnv) {
			token, _ := e.register(t, "issued@example.com")
			uri := *e.setupTotp(t, token).URI
			u, err := url.Parse(uri)
			if err != nil {
				t.Fatalf("uri %q: %v", uri, err)
			}
			if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/Example Co:issued@example.com" || u.Query().Get("issuer") != "Example Co" {
				t.Errorf("uri %q, want otpauth://totp/Example%%20Co:issued@example.com?…issuer=Example%%20Co", uri)
			}
		})
	})
}

// TestMFAThrottle: wrong codes count against the login throttle of the
// identity; past the free ones every attempt, right or wrong, waits.
func TestMFAThrottle(t *testing.T) {
	mfaEach(t, nil, func(t *testing.T, e *mfaEnv) {
		token, _ := e.register(t, "guessed@example.com")
		secret := e.enroll(t, token)
		other, _ := e.register(t, "bystander@example.com")
		otherSecret := e.enroll(t, other)
		e.clock.advance(mfaStep)

		tok, _ := e.login(t, "guessed@example.com")
		wrong := e.wrongCode(t, secret)
		for i := range 5 { // selfservice.flows.login.throttle.free_per_identifier
			out := e.secondFactor(t, tok, map[string]any{"totpCode": wrong})
			mfaWantUserErrors(t, "wrong code "+string(rune('1'+i)), out.UserErrors, "INVALID_CODE@/totpCode")
		}
		var throttled *exchange
		for range 2 {
			x := e.secondFactorRaw(t, tok, map[string]any{"totpCode": wrong})
			if x.code(0) == "TOO_MANY_ATTEMPTS" {
				throttled = x
				break
			}
		}
		if throttled == nil {
			t.Fatal("seven wrong codes in a row and never TOO_MANY_ATTEMPTS")
		}
		mfaWantTopLevel(t, "a throttled attempt", throttled, "loginSecondFactor", "TOO_MANY_ATTEMPTS")
		wait := mfaRetryAfter(throttled)
		if wait < 1 || wait > 60 {
			t.Errorf("retryAfterSeconds %d, want 1–60 (%+v)", wait, throttled.Errors)
		}
		// Even the right code waits.
		mfaWantTopLevel(t, "the right code while throttled", e.secondFactorRaw(t, tok, map[string]any{"totpCode": e.code(t, secret, 0)}), "loginSecondFactor", "TOO_MANY_ATTEMPTS")
		e.wantAAL2Required(t, "while throttled", tok)

		// Another identity is not held up.
		otherTok, _ := e.login(t, "bystander@example.com")
		e.lift(t, otherTok, map[string]any{"totpCode": e.code(t, otherSecret, 0)})

		// After the wait the right code works.
		e.clock.advance(time.Duration(wait) * time.Second)
		e.lift(t, tok, map[string]any{"totpCode": e.code(t, secret, 0)})
	})
}

// TestMFAAdminDeleteCredential: support removes a second factor; the
// identity's AAL2 sessions end, its AAL1 ones stay.
func TestMFAAdminDeleteCredential(t *testing.T) {
	mfaEach(t, nil, func(t *testing.T, e *mfaEnv) {
		token, id := e.register(t, "lost.phone@example.com")
		secret := e.enroll(t, token)
		e.generateLookup(t, token)
		e.clock.advance(mfaStep)
		lifted, _ := e.login(t, "lost.phone@example.com")
		e.lift(t, lifted, map[string]any{"totpCode": e.code(t, secret, 0)})
		pending, _ := e.login(t, "lost.phone@example.com")

		before := e.adminIdentity(t, id)
		if got := before.types(); !slices.Equal(got, []string{"LOOKUP_SECRET", "PASSWORD", "TOTP"}) {
			t.Errorf("credentials %v, want LOOKUP_SECRET PASSWORD TOTP", got)
		}
		if before.AvailableAAL != "AAL2" {
			t.Errorf("availableAal %s, want AAL2", before.AvailableAAL)
		}
		// The listing shows them as well, still without a secret.
		e.admin(t, "identities", `{ identities { edges { node { id credentials { type identifiers createdAt } } } } }`, nil)
		e.admin(t, "identitySessions", `query($id: UUID!) { identitySessions(identityId: $id) { id aal authenticationMethods { method aal completedAt } } }`, map[string]any{"id": id})

		out := e.deleteCredential(t, id, "TOTP")
		mfaWantUserErrors(t, "deleteIdentityCredential TOTP", out.UserErrors)
		if out.Identity == nil {
			t.Fatal("deleteIdentityCredential TOTP: no identity")
		}
		if got := out.Identity.types(); !slices.Equal(got, []string{"LOOKUP_SECRET", "PASSWORD"}) || out.Identity.SecondFactors.TOTP || out.Identity.AvailableAAL != "AAL2" {
			t.Errorf("after deleting TOTP: credentials %v secondFactors %+v availableAal %s, want LOOKUP_SECRET PASSWORD, no TOTP, AAL2",
				got, out.Identity.SecondFactors, out.Identity.AvailableAAL)
		}
		if got := e.adminIdentity(t, id).types(); !slices.Equal(got, []string{"LOOKUP_SECRET", "PASSWORD"}) {
			t.Errorf("identity(id) after deleting TOTP: credentials %v", got)
		}
		e.wantUnauthenticated(t, "the confirming AAL2 session after the admin removed TOTP", token)
		e.wantUnauthenticated(t, "a lifted AAL2 session after the admin removed TOTP", lifted)
		e.wantAAL2Required(t, "an AAL1 session, lookup secrets left", pending)

		out = e.deleteCredential(t, id, "LOOKUP_SECRET")
		mfaWantUserErrors(t, "deleteIdentityCredential LOOKUP_SECRET", out.UserErrors)
		if out.Identity == nil || !slices.Equal(out.Identity.types(), []string{"PASSWORD"}) || out.Identity.AvailableAAL != "AAL1" || out.Identity.SecondFactors.LookupSecretsRemaining != nil {
			t.Errorf("after deleting lookup secrets: %+v, want PASSWORD only and AAL1", out.Identity)
		}
		if me := e.whoami(t, pending); me.AAL != "AAL1" {
			t.Errorf("the AAL1 session without second factors left: aal %s", me.AAL)
		}

		out = e.deleteCredential(t, id, "TOTP")
		mfaWantCodes(t, "deleteIdentityCredential TOTP again", out.UserErrors, "NOT_FOUND")
		out = e.deleteCredential(t, id, "PASSWORD")
		mfaWantUserErrors(t, "deleteIdentityCredential PASSWORD", out.UserErrors, "VALIDATION_FAILED@/type")
		if got := e.adminIdentity(t, id).types(); !slices.Equal(got, []string{"PASSWORD"}) {
			t.Errorf("after a refused PASSWORD deletion: credentials %v", got)
		}
		out = e.deleteCredential(t, uuid.NewString(), "TOTP")
		mfaWantCodes(t, "deleteIdentityCredential of an unknown identity", out.UserErrors, "NOT_FOUND")
		if out.Identity != nil {
			t.Errorf("deleteIdentityCredential of an unknown identity answered %+v", out.Identity)
		}
		mfaWantTopLevel(t, "deleteIdentityCredential by a session",
			e.call(t, "deleteIdentityCredential", pending, mfaDeleteCredQuery, map[string]any{"id": id, "type": "TOTP"}),
			"deleteIdentityCredential", "FORBIDDEN")
	})
}

// TestMFAImport: identities arrive from other systems with their TOTP key
// and unused lookup secrets.
func TestMFAImport(t *testing.T) {
	const secret = "JBSWY3DPEHPK3PXP"
	mfaEach(t, nil, func(t *testing.T, e *mfaEnv) {
		e.log.secret(mfaSecretForms(secret)...)
		e.log.secret("abcd1234", "efgh5678")
		out := e.createIdentity(t, map[string]any{
			"traits": map[string]any{"email": "moved@example.com"},
			"credentials": map[string]any{
				"password":     map[string]any{"password": pw1},
				"totp":         map[string]any{"secretUrl": "otpauth://totp/X:a@example.com?secret=" + secret + "&issuer=X"},
				"lookupSecret": map[string]any{"codes": []string{"abcd1234", "efgh5678"}},
			},
		})
		mfaWantUserErrors(t, "createIdentity with second factors", out.UserErrors)
		if out.Identity == nil {
			t.Fatal("createIdentity: no identity")
		}
		sf := out.Identity.SecondFactors
		if out.Identity.AvailableAAL != "AAL2" || !sf.TOTP || sf.LookupSecretsRemaining == nil || *sf.LookupSecretsRemaining != 2 ||
			!slices.Equal(out.Identity.types(), []string{"LOOKUP_SECRET", "PASSWORD", "TOTP"}) {
			t.Errorf("imported: availableAal %s secondFactors %+v credentials %v, want AAL2, TOTP, 2 lookup secrets",
				out.Identity.AvailableAAL, sf, out.Identity.types())
		}

		tok, _ := e.login(t, "moved@example.com")
		e.wantAAL2Required(t, "an imported identity", tok)
		e.lift(t, tok, map[string]any{"totpCode": e.code(t, secret, 0)})
		tok2, _ := e.login(t, "moved@example.com")
		e.lift(t, tok2, map[string]any{"lookupSecret": "abcd1234"})
		tok3, _ := e.login(t, "moved@example.com")
		e.wantInvalidCode(t, "an imported lookup secret used twice", tok3, map[string]any{"lookupSecret": "abcd1234"}, "/lookupSecret")
		e.lift(t, tok3, map[string]any{"lookupSecret": "EFGH-5678"})

		// A bare secret: SHA1, 6 digits, 30 s.
		out = e.createIdentity(t, map[string]any{
			"traits":      map[string]any{"email": "bare@example.com"},
			"credentials": map[string]any{"password": map[string]any{"password": pw1}, "totp": map[string]any{"secret": secret}},
		})
		mfaWantUserErrors(t, "createIdentity with a bare TOTP secret", out.UserErrors)
		bare, _ := e.login(t, "bare@example.com")
		e.clock.advance(mfaStep)
		e.lift(t, bare, map[string]any{"totpCode": e.code(t, secret, 0)})

		// Through importIdentities: the key and codes are sealed and hashed
		// for the id the identity gets (it used to be drawn again after).
		x := e.admin(t, "importIdentities", `mutation($in: [CreateIdentityInput]!) { importIdentities(input: $in) { results { index userErrors { code path } } } }`,
			map[string]any{"in": []any{map[string]any{
				"traits": map[string]any{"email": "batch@example.com"},
				"credentials": map[string]any{"password": map[string]any{"password": pw1}, "totp": map[string]any{"secret": secret},
					"lookupSecret": map[string]any{"codes": []string{"ijkl9012"}}},
			}}})
		if strings.Contains(string(x.Body), `"code"`) {
			t.Fatalf("importIdentities with second factors: %s", x.Body)
		}
		batch, _ := e.login(t, "batch@example.com")
		e.clock.advance(mfaStep)
		e.lift(t, batch, map[string]any{"totpCode": e.code(t, secret, 0)})
		batch2, _ := e.login(t, "batch@example.com")
		e.lift(t, batch2, map[string]any{"lookupSecret": "ijkl9012"})

		for _, tc := range []struct {
			name   string
			creds  map[string]any
			prefix string
		}{
			{"not an otpauth URL", map[string]any{"totp": map[string]any{"secretUrl": "https://example.com/?secret=" + secret}}, "/credentials/totp"},
			{"an HOTP URL", map[string]any{"totp": map[string]any{"secretUrl": "otpauth://hotp/X:a@example.com?secret=" + secret + "&counter=0"}}, "/credentials/totp"},
			{"a secret that is not base32", map[string]any{"totp": map[string]any{"secretUrl": "otpauth://totp/X:a@example.com?secret=not*base32!"}}, "/credentials/totp"},
			{"no secret", map[string]any{"totp": map[string]any{"secretUrl": "otpauth://totp/X:a@example.com?issuer=X"}}, "/credentials/totp"},
			{"seven digits", map[string]any{"totp": map[string]any{"secretUrl": "otpauth://totp/X:a@example.com?secret=" + secret + "&digits=7"}}, "/credentials/totp"},
			{"both forms", map[string]any{"totp": map[string]any{"secret": secret, "secretUrl": "otpauth://totp/X:a@example.com?secret=" + secret}}, "/credentials/totp"},
			{"neither form", map[string]any{"totp": map[string]any{}}, "/credentials/totp"},
			{"no lookup codes", map[string]any{"lookupSecret": map[string]any{"codes": []string{}}}, "/credentials/lookupSecret"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				out := e.createIdentity(t, map[string]any{"traits": map[string]any{"email": "refused@example.com"}, "credentials": tc.creds})
				if len(out.UserErrors) == 0 || out.Identity != nil {
					t.Fatalf("createIdentity with %s: %+v, want VALIDATION_FAILED", tc.name, out)
				}
				for _, ue := range out.UserErrors {
					if ue.Code != "VALIDATION_FAILED" || ue.Path == nil || !strings.HasPrefix(*ue.Path, tc.prefix) {
						t.Errorf("userErrors %v, want VALIDATION_FAILED under %s", codePaths(out.UserErrors), tc.prefix)
						break
					}
				}
				if n := e.s.identityCount(t, "refused@example.com"); n != 0 {
					t.Errorf("a refused import created %d identities", n)
				}
			})
		}
	})
}

// TestMFASecretsEncryptedAtRest: neither the TOTP key (pending or set up)
// nor a lookup secret can be read from the database; the key is sealed with
// the first secrets.cipher key and opened with any of them, so keys rotate.
func TestMFASecretsEncryptedAtRest(t *testing.T) {
	const (
		k1 = "first-cipher-key-0123456789abcdefghij"
		k2 = "second-cipher-key-0123456789abcdefghij"
		k3 = "unrelated-cipher-key-0123456789abcdefgh"
	)
	dbtest.Each(t, func(t *testing.T, dsn string) {
		clock := newMFAClock()
		server := func(keys ...string) *testServer {
			return newTestServer(t, dsn, func(c *Config) {
				c.now = clock.now
				c.Secrets.Cipher = keys
			})
		}
		e := &mfaEnv{s: server(k1), clock: clock, dsn: dsn, log: &mfaLog{}}
		t.Cleanup(func() { e.log.check(t) })
		wantNoSecrets := func(t *testing.T, when string, secrets []string) {
			t.Helper()
			stored := bytes.ToLower(mfaDatabaseBytes(t, dsn))
			// The copy is real: it holds what is not secret, the traits.
			if !bytes.Contains(stored, []byte("sealed@example.com")) {
				t.Fatalf("%s: the database copy (%d bytes) does not even hold the email: it reads nothing", when, len(stored))
			}
			for _, s := range secrets {
				if bytes.Contains(stored, []byte(strings.ToLower(s))) {
					t.Errorf("%s: the database holds %q in the clear", when, s)
				}
			}
		}

		token, id := e.register(t, "sealed@example.com")
		setup := e.setupTotp(t, token)
		secret := *setup.Secret
		secrets := append(mfaSecretForms(secret), *setup.URI)
		wantNoSecrets(t, "a pending TOTP key", secrets)
		if out := e.confirmTotp(t, token, e.code(t, secret, 0)); len(out.UserErrors) > 0 {
			t.Fatalf("confirmTotp: %v", codePaths(out.UserErrors))
		}
		codes := e.generateLookup(t, token)
		for _, c := range codes {
			secrets = append(secrets, mfaLookupForms(c)...)
		}
		wantNoSecrets(t, "a TOTP key and lookup secrets", secrets)
		configs := mfaCredentialConfigs(t, dsn, id)
		totpConfig, ok := configs["totp"]
		if !ok || len(totpConfig) == 0 {
			t.Fatalf("no totp row in identity_credentials (types %v)", slices.Sorted(maps.Keys(configs)))
		}
		for _, s := range secrets {
			for typ, config := range configs {
				if bytes.Contains(bytes.ToLower(config), []byte(strings.ToLower(s))) {
					t.Errorf("identity_credentials.config of %s holds %q: %s", typ, s, config)
				}
			}
		}

		// signIn signs in on srv and finishes with the code of the moment.
		signIn := func(t *testing.T, srv *mfaEnv) *mfaAuthOut {
			t.Helper()
			srv.clock.advance(mfaStep)
			tok, _ := srv.login(t, "sealed@example.com")
			out := srv.secondFactor(t, tok, map[string]any{"totpCode": srv.code(t, secret, 0)})
			return &out
		}
		lifted := func(t *testing.T, what string, out *mfaAuthOut) {
			t.Helper()
			if len(out.UserErrors) > 0 || out.Session == nil || out.Session.AAL != "AAL2" {
				t.Errorf("%s: userErrors %v session %+v, want AAL2", what, codePaths(out.UserErrors), out.Session)
			}
		}
		refused := func(t *testing.T, what string, srv *mfaEnv) {
			t.Helper()
			srv.clock.advance(mfaStep)
			tok, _ := srv.login(t, "sealed@example.com")
			x := srv.secondFactorRaw(t, tok, map[string]any{"totpCode": srv.code(t, secret, 0)})
			if len(x.Errors) == 0 {
				if out := field[mfaAuthOut](t, x.gqlResponse, "loginSecondFactor"); out.Session != nil {
					t.Errorf("%s: a key it cannot have opened checked a code: %s", what, x.Body)
				}
			}
			srv.wantAAL2Required(t, what, tok)
		}

		// A server with only another key cannot open what k1 sealed.
		refused(t, "a server with an unrelated key", e.on(server(k3)))
		refused(t, "a server with only the next key, before any rewrite", e.on(server(k2)))
		// The next key first, the old one still listed: the old key opens,
		// and the write that stores the used step seals with the new one.
		lifted(t, "a server with [k2, k1]", signIn(t, e.on(server(k2, k1))))
		wantNoSecrets(t, "after the rewrite", secrets)
		lifted(t, "a server with only k2, after the rewrite", signIn(t, e.on(server(k2))))
		refused(t, "a server with only the old key, after the rewrite", e.on(server(k1)))
	})
}
