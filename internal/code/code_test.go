package code

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/internal/courier"
)

const (
	secretA = "first-secret-0123456789abcdef"
	secretB = "second-secret-0123456789abcdef"
)

func newCodes(t *testing.T, secrets ...string) *Codes {
	t.Helper()
	c, err := New(Config{Secrets: secrets}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestShortCodes(t *testing.T) {
	c := newCodes(t, secretA)
	target := Target{IdentityID: uuid.New(), Via: "email", Address: "a@example.com"}
	counts := [10]int{}
	for range 2000 {
		plain, row, err := c.Short(db.PurposeVerification, target, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(plain) != 6 || strings.Trim(plain, "0123456789") != "" {
			t.Fatalf("short code %q is not 6 digits", plain)
		}
		if row.Long || bytes.Contains(row.Hash, []byte(plain)) || len(row.Hash) != 32 {
			t.Fatalf("row %+v", row)
		}
		for _, d := range plain {
			counts[d-'0']++
		}
	}
	// 12,000 digits, 1,200 expected each: a byte % 10 bias would put 0–5
	// near 1,229 and 6–9 near 1,156; this only catches gross mistakes.
	for d, n := range counts {
		if n < 1000 || n > 1400 {
			t.Errorf("digit %d drawn %d times of 12000", d, n)
		}
	}
}

// TestDigitsAreUnbiased: bytes from 250 up would favour 0–5 (256 is not a
// multiple of 10), so they are thrown away, not folded into a digit.
func TestDigitsAreUnbiased(t *testing.T) {
	feed := []byte{250, 251, 252, 253, 254, 255, 7, 17, 255, 27, 37, 47, 249}
	feed = append(feed, bytes.Repeat([]byte{255}, 32-len(feed))...)
	c, err := New(Config{Secrets: []string{secretA}}, bytes.NewReader(feed))
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.short()
	if err != nil {
		t.Fatal(err)
	}
	if got != "777779" {
		t.Errorf("got %q, want 777779 (bytes 250-255 skipped, the rest mod 10)", got)
	}
}

func TestLongCodes(t *testing.T) {
	c := newCodes(t, secretA)
	plain, row, err := c.Long(db.PurposeRecovery, Target{IdentityID: uuid.New()}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != 26 || !IsLong(plain) || !row.Long {
		t.Fatalf("long code %q, row %+v", plain, row)
	}
	// Typed in lower case with dashes, it is the same code.
	typed := strings.ToLower(plain[:13] + "-" + plain[13:])
	if !IsLong(typed) {
		t.Fatalf("%q not recognised", typed)
	}
	if db.MatchCode([]*db.Code{row}, c.candidates(longParts(db.PurposeRecovery, typed))) == nil {
		t.Error("the typed form does not match")
	}
	if db.MatchCode([]*db.Code{row}, c.candidates(longParts(db.PurposeInvitation, plain))) != nil {
		t.Error("a recovery code matched as an invitation")
	}
	if IsLong("123456") {
		t.Error("a short code looks long")
	}
}

func TestHashesBindAddressAndRotate(t *testing.T) {
	old := newCodes(t, secretA)
	target := Target{IdentityID: uuid.New(), Via: "email", Address: "a@example.com"}
	plain, row, err := old.Short(db.PurposeVerification, target, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	match := func(c *Codes, purpose, address, code string) bool {
		return db.MatchCode([]*db.Code{row}, c.candidates(shortParts(purpose, address, code))) != nil
	}
	if !match(old, db.PurposeVerification, target.Address, plain) || !match(old, db.PurposeVerification, target.Address, plain[:3]+" "+plain[3:]) {
		t.Error("the code does not match itself")
	}
	if match(old, db.PurposeVerification, "b@example.com", plain) || match(old, db.PurposeRecovery, target.Address, plain) {
		t.Error("the code matched for another address or purpose")
	}
	rotated := newCodes(t, secretB, secretA)
	if !match(rotated, db.PurposeVerification, target.Address, plain) {
		t.Error("a code signed with the old secret fails after rotation")
	}
	if match(newCodes(t, secretB), db.PurposeVerification, target.Address, plain) {
		t.Error("a code matched under a secret that never signed it")
	}
}

func TestNewRefuses(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Secrets: []string{"short"}},
		{Secrets: []string{secretA}, Digits: 4},
		{Secrets: []string{secretA}, MaxAttempts: -1},
	} {
		if _, err := New(cfg, rand.Reader); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// TestLoginMessage: a login code goes out in Kratos's login_code template,
// its data under Kratos's names.
func TestLoginMessage(t *testing.T) {
	c, err := courier.New()
	if err != nil {
		t.Fatal(err)
	}
	target := Target{IdentityID: uuid.New(), Via: "sms", Address: "+14155552671"}
	m, err := Message(c, db.PurposeLogin, target, "123456", 15*time.Minute, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if m.TemplateType != courier.TemplateLoginCode || m.Body != "Your sign-in code is: 123456" || m.Recipient != "+14155552671" {
		t.Errorf("message: %+v", m)
	}
	var data map[string]any
	if err := json.Unmarshal(m.TemplateData, &data); err != nil || data["login_code"] != "123456" || data["to"] != "+14155552671" {
		t.Errorf("template data %s, %v", m.TemplateData, err)
	}
}
