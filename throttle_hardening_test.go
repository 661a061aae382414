package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"
	"github.com/uptrace/bun/driver/sqliteshim"
)

// Regression tests for the throttle and session hardening: each was written
// against a reproduced finding and fails on the code before the fix.

// withProxy makes the test client a trusted proxy, so a test chooses the
// client address with X-Forwarded-For.
func withProxy(c *Config) {
	c.Serve.TrustedProxies = []string{"127.0.0.0/8", "::1/128"}
}

// outcome sorts an answer: "ok", a userError code, or a top-level error code.
type outcome struct {
	Code       string
	RetryAfter int // extensions.retryAfterSeconds; -1 when absent
	Token      string
}

// tryLogin sends a login from the client address ip. Safe in goroutines: it
// reports failures as errors instead of failing the test.
func (s *testServer) tryLogin(ip, identifier, password string) (outcome, error) {
	return s.tryMutation(ip, "", loginQuery, map[string]any{"in": map[string]any{"identifier": identifier, "password": password}}, "login")
}

// tryMutation sends query from the client address ip (none: the loopback
// peer) with the bearer token, and sorts the answer of the field name.
func (s *testServer) tryMutation(ip, token, query string, vars map[string]any, name string) (outcome, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if ip != "" {
		req.Header.Set("X-Forwarded-For", ip)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return outcome{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r struct {
		Data   map[string]json.RawMessage `json:"data"`
		Errors []gqlError                 `json:"errors"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		return outcome{}, fmt.Errorf("HTTP %d, body is not JSON: %q", resp.StatusCode, raw)
	}
	if len(r.Errors) > 0 {
		code, _ := r.Errors[0].Extensions["code"].(string)
		o := outcome{Code: code, RetryAfter: -1}
		if n, ok := r.Errors[0].Extensions["retryAfterSeconds"].(json.Number); ok {
			v, err := n.Int64()
			if err != nil {
				return outcome{}, fmt.Errorf("retryAfterSeconds %s is not an integer", n)
			}
			o.RetryAfter = int(v)
		}
		if bytes.Contains(raw, []byte("ids_st_")) {
			return outcome{}, fmt.Errorf("a refused request gave a session: %s", raw)
		}
		return o, nil
	}
	var p struct {
		SessionToken *string
		UserErrors   []userError
	}
	if err := json.Unmarshal(r.Data[name], &p); err != nil {
		return outcome{}, fmt.Errorf("decode %s: %v", raw, err)
	}
	if len(p.UserErrors) > 0 {
		codes := make([]string, len(p.UserErrors))
		for i, e := range p.UserErrors {
			codes[i] = e.Code
			if e.Path != nil {
				codes[i] += "@" + *e.Path
			}
		}
		return outcome{Code: strings.Join(codes, ","), RetryAfter: -1}, nil
	}
	o := outcome{Code: "ok", RetryAfter: -1}
	if p.SessionToken != nil {
		o.Token = *p.SessionToken
	}
	return o, nil
}

// mustTry is tryLogin on the test's goroutine.
func (s *testServer) mustTry(t *testing.T, ip, identifier, password string) outcome {
	t.Helper()
	o, err := s.tryLogin(ip, identifier, password)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// wantTooMany asserts a TOO_MANY_ATTEMPTS answer whose retryAfterSeconds is
// between 1 and most.
func wantTooMany(t *testing.T, o outcome, most int, what string) {
	t.Helper()
	if o.Code != "TOO_MANY_ATTEMPTS" {
		t.Errorf("%s: %s, want TOO_MANY_ATTEMPTS", what, o.Code)
		return
	}
	if o.RetryAfter < 1 || o.RetryAfter > most {
		t.Errorf("%s: retryAfterSeconds %d, want 1…%d", what, o.RetryAfter, most)
	}
}

// sqlInt runs a query that returns one integer on the server's database.
func sqlInt(t *testing.T, dsn, query string) int {
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
	var n int
	if err := sqldb.QueryRowContext(context.Background(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// Finding 4: the check, the hash and the record were separate steps, so
// concurrent guesses all reached the hash. Now each attempt is reserved
// before hashing: exactly FreePerIdentifier guesses are compared.
func TestThrottleHardeningConcurrentLogins(t *testing.T) {
	eachSelfService(t, withProxy, func(t *testing.T, s *testServer, _ string) {
		const victim = "race.victim@example.com"
		s.mustRegister(t, victim, pw1)
		const n = 40
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			got   = map[string]int{}
			fails []error
			start = make(chan struct{})
		)
		for i := range n {
			wg.Go(func() {
				<-start
				o, err := s.tryLogin("203.0.113.5", victim, fmt.Sprintf("wrong-password-%02d", i))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					fails = append(fails, err)
					return
				}
				if o.Code == "TOO_MANY_ATTEMPTS" && o.RetryAfter < 1 {
					fails = append(fails, fmt.Errorf("TOO_MANY_ATTEMPTS with retryAfterSeconds %d", o.RetryAfter))
				}
				got[o.Code]++
			})
		}
		close(start)
		wg.Wait()
		for _, err := range fails {
			t.Error(err)
		}
		if got["INVALID_CREDENTIALS"] != 5 || got["TOO_MANY_ATTEMPTS"] != n-5 {
			t.Errorf("%d concurrent wrong guesses answered %v, want 5 INVALID_CREDENTIALS (compared) and %d TOO_MANY_ATTEMPTS", n, got, n-5)
		}
		// Even the right password waits now, from the same address.
		wantTooMany(t, s.mustTry(t, "203.0.113.5", victim, pw1), 1, "right password during the block")

		t.Run("good logins cost a shared address nothing", func(t *testing.T) {
			s.mustRegister(t, "office.a@example.com", pw1)
			s.mustRegister(t, "office.b@example.com", pw1)
			for i := range 30 {
				who := []string{"office.a@example.com", "office.b@example.com"}[i%2]
				if o := s.mustTry(t, "198.51.100.77", who, pw1); o.Code != "ok" {
					t.Fatalf("good login %d from a shared address: %s", i, o.Code)
				}
			}
		})
	})
}

// Finding 5: changeMyPassword compared the current password without limit,
// and a right guess with a weak new password answered PASSWORD_POLICY while a
// wrong one answered INVALID_CREDENTIALS.
func TestThrottleHardeningChangePassword(t *testing.T) {
	eachSelfService(t, withProxy, func(t *testing.T, s *testServer, _ string) {
		const email = "oracle@example.com"
		token, _ := s.mustRegister(t, email, pw1)
		const change = `mutation($in: ChangePasswordInput!) { changeMyPassword(input: $in) { identity { id } userErrors { code message path } } }`
		try := func(t *testing.T, current, next string) outcome {
			t.Helper()
			o, err := s.tryMutation("", token, change, map[string]any{"in": map[string]any{"currentPassword": current, "newPassword": next}}, "changeMyPassword")
			if err != nil {
				t.Fatal(err)
			}
			return o
		}

		t.Run("a weak new password answers alike for right and wrong guesses", func(t *testing.T) {
			for i := range 8 {
				if got := try(t, fmt.Sprintf("wrong-guess-%d", i), "short"); got.Code != "PASSWORD_POLICY@/newPassword" {
					t.Fatalf("wrong current password, weak new one: %s, want PASSWORD_POLICY@/newPassword", got.Code)
				}
			}
			if got := try(t, pw1, "short"); got.Code != "PASSWORD_POLICY@/newPassword" {
				t.Errorf("right current password, weak new one: %s", got.Code)
			}
		})
		t.Run("wrong current passwords are limited", func(t *testing.T) {
			var codes []string
			for i := range 15 {
				o := try(t, fmt.Sprintf("wrong-guess-%02d", i), pw2)
				codes = append(codes, o.Code)
				if i >= 5 {
					wantTooMany(t, o, 3600, fmt.Sprintf("guess %d", i))
				}
			}
			want := slices.Repeat([]string{"INVALID_CREDENTIALS@/currentPassword"}, 5)
			if !slices.Equal(codes[:5], want) {
				t.Errorf("first five guesses: %v, want %v", codes[:5], want)
			}
			// The right one waits too, for a second at first.
			wantTooMany(t, try(t, pw1, pw2), 1, "right guess during the block")
			time.Sleep(1100 * time.Millisecond)
			if got := try(t, pw1, pw2); got.Code != "ok" {
				t.Errorf("right current password after the wait: %s", got.Code)
			}
		})
		// A thief guessing through the session does not lock the owner out.
		s.mustLogin(t, email, pw2)
	})
}

// Finding 6: a stolen old session could change the email (a login
// identifier and recovery address), and so take the account over, although
// it could not change the password.
func TestThrottleHardeningReauthentication(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, dsn string) {
		reg := s.register(t, map[string]any{"schemaId": "person", "password": pw1,
			"traits": map[string]any{"email": "owner@example.com", "username": "owner", "name": "Before"}})
		if len(reg.UserErrors) > 0 {
			t.Fatalf("register: %v", codePaths(reg.UserErrors))
		}
		old, sess := s.mustLogin(t, "owner@example.com", pw1)
		twoHoursAgo := time.Now().Add(-2 * time.Hour).UTC().Format("2006-01-02 15:04:05+00:00")
		sqlExec(t, dsn, fmt.Sprintf("UPDATE sessions SET authenticated_at = '%s' WHERE id = '%s'", twoHoursAgo, sess.ID))
		s.syncCache(t)
		update := func(t *testing.T, token string, traits map[string]any) identityPayloadOut {
			t.Helper()
			r := s.gql(t, token, `mutation($t: JSON!) { updateMyTraits(traits: $t) { `+identFields+` } }`, map[string]any{"t": traits})
			if len(r.Errors) > 0 {
				t.Fatalf("updateMyTraits: %+v", r.Errors)
			}
			return field[identityPayloadOut](t, r, "updateMyTraits")
		}
		for _, tc := range []struct {
			name   string
			traits map[string]any
			want   []string
		}{
			{"email (identifier and address)", map[string]any{"email": "thief@example.com", "username": "owner", "name": "Before"}, []string{"REAUTHENTICATION_REQUIRED@/traits/email"}},
			{"email in another case is no change", map[string]any{"email": "Owner@Example.com", "username": "owner", "name": "Case"}, nil},
			{"username (identifier)", map[string]any{"email": "owner@example.com", "username": "thief", "name": "Before"}, []string{"REAUTHENTICATION_REQUIRED@/traits/username"}},
			{"both", map[string]any{"email": "thief@example.com", "username": "thief"}, []string{"REAUTHENTICATION_REQUIRED@/traits/email", "REAUTHENTICATION_REQUIRED@/traits/username"}},
			{"invalid traits say so first", map[string]any{"email": "nope", "username": "owner"}, []string{"VALIDATION_FAILED@/traits/email"}},
			{"other traits", map[string]any{"email": "owner@example.com", "username": "owner", "name": "After"}, nil},
		} {
			t.Run("old session: "+tc.name, func(t *testing.T) {
				got := update(t, old, tc.traits)
				errs := codePaths(got.UserErrors)
				slices.Sort(errs)
				if !slices.Equal(errs, tc.want) {
					t.Errorf("userErrors %v, want %v", errs, tc.want)
				}
				if len(tc.want) > 0 && got.Identity != nil {
					t.Errorf("refused, yet the identity came back: %+v", got.Identity)
				}
			})
		}
		if me := s.whoami(t, old); me.Identity.Traits["email"] == "thief@example.com" || me.Identity.Traits["name"] != "After" {
			t.Errorf("traits %v, want the email kept and the name changed", me.Identity.Traits)
		}
		s.wantLoginFails(t, "thief@example.com", pw1, "INVALID_CREDENTIALS")
		s.wantLoginFails(t, "thief", pw1, "INVALID_CREDENTIALS")

		t.Run("a fresh sign-in may change them", func(t *testing.T) {
			fresh, _ := s.mustLogin(t, "owner", pw1)
			got := update(t, fresh, map[string]any{"email": "new.owner@example.com", "username": "owner", "name": "After"})
			if len(got.UserErrors) > 0 || got.Identity == nil {
				t.Fatalf("userErrors %v", codePaths(got.UserErrors))
			}
			s.mustLogin(t, "new.owner@example.com", pw1)
		})
	})
}

// Finding 7: IPv6 clients were counted per address (one /64 holds 2^64 of
// them), and five failures from anywhere locked the owner out for up to 15
// minutes, renewable forever.
func TestThrottleHardeningKeys(t *testing.T) {
	t.Run("addresses", func(t *testing.T) {
		eachSelfService(t, func(c *Config) {
			withProxy(c)
			c.Selfservice.Flows.Login.Throttle.FreePerAddress = 3
		}, func(t *testing.T, s *testServer, _ string) {
			guess := 0
			try := func(ip string) outcome {
				t.Helper()
				guess++
				// A new identifier each time: only the address counts.
				return s.mustTry(t, ip, fmt.Sprintf("ghost-%d@example.com", guess), "wrong-password")
			}
			for _, ip := range []string{"2001:db8:aa:bb::1", "2001:db8:aa:bb::2", "2001:db8:aa:bb:1:2:3:4"} {
				if o := try(ip); o.Code != "INVALID_CREDENTIALS" {
					t.Fatalf("failure from %s: %s", ip, o.Code)
				}
			}
			wantTooMany(t, try("2001:db8:aa:bb:ffff:ffff:ffff:9"), 1, "a fourth address of the same /64")
			if o := try("2001:db8:aa:bc::1"); o.Code != "INVALID_CREDENTIALS" {
				t.Errorf("another /64: %s, want INVALID_CREDENTIALS", o.Code)
			}
			for range 3 {
				if o := try("198.51.100.7"); o.Code != "INVALID_CREDENTIALS" {
					t.Fatalf("IPv4 failure: %s", o.Code)
				}
			}
			wantTooMany(t, try("198.51.100.7"), 1, "the same IPv4 address")
			if o := try("198.51.100.8"); o.Code != "INVALID_CREDENTIALS" {
				t.Errorf("the neighbouring IPv4 address: %s, want INVALID_CREDENTIALS", o.Code)
			}
		})
	})
	t.Run("the owner waits at most identifier_max_delay", func(t *testing.T) {
		eachSelfService(t, func(c *Config) {
			withProxy(c)
			c.Selfservice.Flows.Login.Throttle.IdentifierMaxDelay = Duration(time.Second)
		}, func(t *testing.T, s *testServer, _ string) {
			const victim = "locked.out@example.com"
			s.mustRegister(t, victim, pw1)
			const attacker, owner = "192.0.2.1", "198.51.100.50"
			for i := range 5 {
				if o := s.mustTry(t, attacker, victim, fmt.Sprintf("guess-%d", i)); o.Code != "INVALID_CREDENTIALS" {
					t.Fatalf("guess %d: %s", i, o.Code)
				}
			}
			// Refused attempts cost nothing and count for nothing.
			for range 10 {
				wantTooMany(t, s.mustTry(t, attacker, victim, "guess-x"), 1, "attacker during the block")
			}
			wantTooMany(t, s.mustTry(t, owner, victim, pw1), 1, "owner during the block")
			time.Sleep(1100 * time.Millisecond)
			// A sixth failure, from elsewhere, would double the wait: the
			// identifier's cap keeps it at a second.
			if o := s.mustTry(t, "192.0.2.2", victim, "guess-6"); o.Code != "INVALID_CREDENTIALS" {
				t.Fatalf("guess from a second address: %s", o.Code)
			}
			wantTooMany(t, s.mustTry(t, owner, victim, pw1), 1, "owner after the sixth failure")
			time.Sleep(1100 * time.Millisecond)
			if o := s.mustTry(t, owner, victim, pw1); o.Code != "ok" {
				t.Errorf("owner after identifier_max_delay: %s, want a session", o.Code)
			}
			// The attacker's own address and identifier pair is still
			// counted: its sixth guess from there waits longer.
			if o := s.mustTry(t, attacker, victim, "guess-7"); o.Code != "INVALID_CREDENTIALS" {
				t.Fatalf("attacker after the block: %s", o.Code)
			}
			wantTooMany(t, s.mustTry(t, attacker, victim, "guess-8"), 2, "attacker's next guess")
		})
	})
}

// Finding 8: throttle keys were stored as given: a long identifier made a
// long key (PostgreSQL: INTERNAL past the index row limit, and nothing
// recorded), and rows were never purged.
func TestThrottleHardeningLongKeys(t *testing.T) {
	eachSelfService(t, withProxy, func(t *testing.T, s *testServer, dsn string) {
		// Random, so PostgreSQL cannot compress it below its index row limit.
		raw := make([]byte, 1500)
		_, _ = rand.Read(raw)
		long := hex.EncodeToString(raw) + "@example.com"
		for i := range 5 {
			o := s.mustTry(t, "203.0.113.9", long, fmt.Sprintf("guess-%d", i))
			if o.Code == "ok" || o.Code == "TOO_MANY_ATTEMPTS" || o.Code == "INTERNAL_SERVER_ERROR" || o.Code == "UNAVAILABLE" {
				t.Fatalf("login %d with a 3,000-byte identifier: %s, want a userError", i, o.Code)
			}
		}
		wantTooMany(t, s.mustTry(t, "203.0.113.9", long, "guess-5"), 1, "sixth attempt with the long identifier")
		if n := sqlInt(t, dsn, "SELECT COUNT(*) FROM login_throttles WHERE length(key) <> 32"); n != 0 {
			t.Errorf("%d throttle keys are not 32-byte hashes", n)
		}
		if n := sqlInt(t, dsn, "SELECT COUNT(*) FROM login_throttles"); n == 0 {
			t.Fatalf("nothing recorded")
		}
		// Rows past the window (and any block) go; the others stay.
		ctx := context.Background()
		if _, err := s.app.store.PruneLoginThrottles(ctx, time.Now(), time.Hour); err != nil {
			t.Fatal(err)
		}
		if n := sqlInt(t, dsn, "SELECT COUNT(*) FROM login_throttles"); n == 0 {
			t.Errorf("pruning removed rows still inside the window")
		}
		if _, err := s.app.store.PruneLoginThrottles(ctx, time.Now().Add(2*time.Hour), time.Hour); err != nil {
			t.Fatal(err)
		}
		if n := sqlInt(t, dsn, "SELECT COUNT(*) FROM login_throttles"); n != 0 {
			t.Errorf("%d rows left after pruning past the window", n)
		}
	})
}

// Finding 13: an admin password reset left the identity's sessions alive,
// so whoever had taken the account over stayed in.
func TestThrottleHardeningAdminPasswordReset(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		const email = "reset.me@example.com"
		a, id := s.mustRegister(t, email, pw1)
		b, _ := s.mustLogin(t, email, pw1)
		s.whoami(t, a)
		s.whoami(t, b)
		const update = `mutation($id: UUID!, $in: UpdateIdentityInput!) { updateIdentity(id: $id, input: $in) { identity { id } userErrors { code message path } } }`
		reset := func(t *testing.T, in map[string]any) {
			t.Helper()
			in["traits"] = map[string]any{"email": email}
			r := s.admin(t, update, map[string]any{"id": id, "in": in})
			if got := field[identityPayloadOut](t, r, "updateIdentity"); len(got.UserErrors) > 0 || got.Identity == nil {
				t.Fatalf("updateIdentity: %v", codePaths(got.UserErrors))
			}
		}
		password := func(pw string) map[string]any {
			return map[string]any{"password": map[string]any{"password": pw}}
		}

		reset(t, map[string]any{"credentials": password(pw2)})
		s.wantUnauthenticated(t, a, "session after an admin password reset")
		s.wantUnauthenticated(t, b, "session after an admin password reset")
		c, _ := s.mustLogin(t, email, pw2)

		reset(t, map[string]any{"credentials": password(pw3), "revokeSessions": false})
		s.whoami(t, c)
		s.mustLogin(t, email, pw3)

		reset(t, map[string]any{"metadataPublic": map[string]any{"plan": "gold"}})
		s.whoami(t, c)

		reset(t, map[string]any{"credentials": map[string]any{"password": map[string]any{"hashedPassword": weakArgon2(pw1)}}, "revokeSessions": true})
		s.wantUnauthenticated(t, c, "session after an admin reset to an imported hash")
		s.mustLogin(t, email, pw1)
	})
}
