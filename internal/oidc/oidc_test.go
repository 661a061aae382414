package oidc

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReturnPolicy(t *testing.T) {
	p, err := newReturnPolicy([]string{
		"https://app.example.com/",
		"https://*.example.org/app/",
		"https://exact.example.net/done",
		"http://localhost:3000/",
	}, "https://app.example.com/home")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"https://app.example.com/", true},
		{"https://app.example.com/deep/path?x=1#frag", true},
		{"https://APP.example.com/x", true},
		{"http://app.example.com/", false},            // scheme
		{"https://app.example.com:8443/", false},      // port
		{"https://app.example.com.evil.test/", false}, // look-alike host
		{"https://evil.test/?https://app.example.com/", false},
		{"https://user@app.example.com/", false},       // user info
		{"https://app.example.com/a/../../etc", false}, // dot segments
		{"https://app.example.com\\@evil.test/", false},
		{"https://a.example.org/app/x", true},
		{"https://b.a.example.org/app/", true},
		{"https://example.org/app/", false}, // "*." is for subdomains only
		{"https://evilexample.org/app/", false},
		{"https://a.example.org/other", false}, // outside the prefix
		{"https://a.example.org/application", false},
		{"https://exact.example.net/done", true},
		{"https://exact.example.net/done?step=2", true},
		{"https://exact.example.net/done/more", false},
		{"https://exact.example.net/don", false},
		{"http://localhost:3000/cb", true},
		{"http://localhost:3001/cb", false},
		{"/relative", false},
		{"javascript:alert(1)", false},
		{"https://app.example.com/home", true},
	} {
		in := tc.in
		got, err := p.resolve(&in)
		if (err == nil) != tc.want {
			t.Errorf("resolve(%q) = %q, %v; want allowed %v", tc.in, got, err, tc.want)
		}
	}
	if got, err := p.resolve(nil); err != nil || got != "https://app.example.com/home" {
		t.Errorf("resolve(nil) = %q, %v; want the default", got, err)
	}
	empty, _ := newReturnPolicy(nil, "")
	if _, err := empty.resolve(nil); err == nil || !strings.Contains(err.Error(), "default_browser_return_url") {
		t.Errorf("no returnTo and no default: %v", err)
	}
	for _, bad := range []string{"app.example.com", "https://*/", "https://a.*.example.com/", "https://x.example.com/?q=1", "ftp://x.example.com/"} {
		if _, err := newReturnPolicy([]string{bad}, ""); err == nil {
			t.Errorf("allowed_return_urls %q was accepted", bad)
		}
	}
}

func TestNonceMatches(t *testing.T) {
	h := sha256.Sum256([]byte("n"))
	hashed := hex.EncodeToString(h[:])
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		claim string
		given *string
		want  bool
	}{
		{"n", str("n"), true},
		{hashed, str("n"), true},
		{strings.ToUpper(hashed), str("n"), true},
		{"", nil, true},
		{"", str(""), true},
		{"n", nil, false}, // a token with a nonce needs one
		{"", str("n"), false},
		{"m", str("n"), false},
		{hashed, str(hashed), true},
	} {
		if got := nonceMatches(tc.claim, tc.given); got != tc.want {
			t.Errorf("nonceMatches(%q, %v) = %v, want %v", tc.claim, tc.given, got, tc.want)
		}
	}
}

func b64(s string) string { return "base64://" + base64.StdEncoding.EncodeToString([]byte(s)) }

func TestMapper(t *testing.T) {
	ctx := context.Background()
	slots := make(chan struct{}, 2)
	load := func(src string) *mapper {
		t.Helper()
		m, err := loadMapper(ctx, b64(src), http.DefaultClient, slots)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	claims := &Claims{Issuer: "https://issuer.example", Subject: "s1", Email: "Ada@Example.com", EmailVerified: true,
		RawClaims: map[string]any{"groups": []any{"a", "b"}}}

	m := load(`local claims = std.extVar('claims');
{ identity: {
  traits: { email: claims.email, groups: claims.raw_claims.groups },
  metadata_public: { sub: claims.sub },
  metadata_admin: null,
  verified_addresses: [{ via: 'email', value: claims.email }],
} }`)
	out, err := m.run(ctx, claims, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if string(out.Traits) != `{"email":"Ada@Example.com","groups":["a","b"]}` && !strings.Contains(string(out.Traits), `"groups"`) {
		t.Errorf("traits = %s", out.Traits)
	}
	if !strings.Contains(string(out.MetadataPublic), `"s1"`) || out.MetadataAdmin != nil {
		t.Errorf("metadata = %s / %s", out.MetadataPublic, out.MetadataAdmin)
	}
	if len(out.Verified) != 1 || out.Verified[0].Value != "ada@example.com" {
		t.Errorf("verified = %+v (emails lower-cased as Kratos does)", out.Verified)
	}

	for name, src := range map[string]string{
		"traits not an object":  `{ identity: { traits: [] } }`,
		"no identity":           `{ traits: {} }`,
		"metadata not object":   `{ identity: { traits: {}, metadata_public: 'x' } }`,
		"addresses not a list":  `{ identity: { traits: {}, verified_addresses: 'x' } }`,
		"runtime error":         `{ identity: { traits: { x: std.extVar('claims').nope } } }`,
		"deep recursion":        `local f(n) = if n == 0 then 0 else 1 + f(n - 1); { identity: { traits: { x: f(100000) } } }`,
		"imports refused":       `{ identity: { traits: import '/etc/passwd' } }`,
		"unknown external var":  `{ identity: { traits: { x: std.extVar('identity') } } }`,
		"output not an object?": `[]`,
	} {
		if _, err := load(src).run(ctx, claims, time.Now()); err == nil {
			t.Errorf("%s: no error", name)
		} else if _, ok := err.(errMapper); !ok {
			t.Errorf("%s: %T %v, want a mapper error", name, err, err)
		}
	}

	// A mapper that runs too long is answered for in time.
	slow := load(`local f(n) = if n == 0 then 0 else f(n - 1) + 0 * std.length(std.range(1, 1000)); { identity: { traits: { x: std.foldl(function(a, b) a + f(150), std.range(1, 100000), 0) } } }`)
	start := time.Now()
	if _, err := slow.run(ctx, claims, time.Now()); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("slow mapper: %v", err)
	}
	if d := time.Since(start); d > mapperTimeout+time.Second {
		t.Errorf("slow mapper answered after %s", d)
	}
}

func TestLoadMapper(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.jsonnet")
	if err := os.WriteFile(path, []byte(`{ identity: { traits: {} } }`), 0o600); err != nil {
		t.Fatal(err)
	}
	slots := make(chan struct{}, 1)
	if _, err := loadMapper(context.Background(), "file://"+path, http.DefaultClient, slots); err != nil {
		t.Errorf("file://: %v", err)
	}
	big := make([]byte, maxMapperBytes+10)
	for i := range big {
		big[i] = ' '
	}
	if err := os.WriteFile(path, big, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadMapper(context.Background(), "file://"+path, http.DefaultClient, slots); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("a huge mapper: %v", err)
	}
	for _, bad := range []string{"ftp://x", "no-scheme", "base64://!!!"} {
		if _, err := loadMapper(context.Background(), bad, http.DefaultClient, slots); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}
