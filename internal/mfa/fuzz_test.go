package mfa

import (
	"encoding/base32"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
)

// FuzzParseTOTP feeds arbitrary keys to ParseTOTP (and, as stored URLs, to
// CheckTOTP). Run it longer with
//
//	go test -run='^$' -fuzz=FuzzParseTOTP -fuzztime=60s ./internal/mfa/
//
// Neither may panic, and no error may repeat the input's secret. An accepted
// key must come back unchanged from a second ParseTOTP, be usable by
// CheckTOTP, and be read by pquerna/otp as the same secret.
func FuzzParseTOTP(f *testing.F) {
	for _, seed := range []string{
		testSecret,
		strings.ToLower(testSecret),
		"jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp",
		"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ====",
		"",
		"=",
		"A",
		strings.Repeat("A", 205),
		strings.Repeat("A", 206),
		"otpauth://totp/identityd:alice@example.com?secret=" + testSecret + "&issuer=identityd&algorithm=SHA1&digits=6&period=30",
		"otpauth://totp/identityd:alice@example.com?algorithm=SHA1&digits=6&issuer=identityd&period=30&secret=" + testSecret,
		"otpauth://totp/RFC:6238?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&algorithm=SHA512&digits=8&period=15",
		"otpauth://totp/?secret=" + testSecret,
		"otpauth://totp/a%3Ab%20c:d?secret=" + testSecret + "&issuer=a%26b%2Bc",
		"otpauth://hotp/x:y?secret=" + testSecret + "&counter=0",
		"otpauth://" + testSecret + "/x?secret=" + testSecret,
		"otpauth:totp/x?secret=" + testSecret,
		"otpauth://totp/x?secret=" + testSecret + "&algorithm=" + testSecret,
		"otpauth://totp/x?secret=" + testSecret + "&digits=" + testSecret,
		"otpauth://totp/x?secret=" + testSecret + "&period=" + testSecret,
		"otpauth://totp/x?secret=" + testSecret + "&secret=" + testSecret,
		"otpauth://totp/x?secret=" + testSecret + "%zz",
		"otpauth://totp/%zz?secret=" + testSecret,
		"otpauth://totp/x?secret=" + testSecret + ";a=b",
		"otpauth://totp/x?secret=" + testSecret + "&encoder=steam",
		"otpauth://totp/x?secret=" + testSecret[:31] + "1",
		"otpauth://totp/x?secret=" + testSecret + "&period=-9223372036854775808",
		"https://example.com/?secret=" + testSecret,
		"otpauth://totp/x:y?secret=" + testSecret + "&x=" + strings.Repeat("%25", 650),
	} {
		f.Add(seed)
	}
	now := time.Unix(1_700_000_000, 0)
	f.Fuzz(func(t *testing.T, in string) {
		out, err := ParseTOTP(in, "identityd", "alice@example.com")
		if err != nil {
			checkNoSecret(t, in, err)
		} else {
			if len(out) > maxKeyBytes {
				t.Fatalf("ParseTOTP(%q) = %d bytes, over the limit", in, len(out))
			}
			again, err := ParseTOTP(out, "other", "other")
			if err != nil || again != out {
				t.Fatalf("ParseTOTP(%q) = %q, which comes back as %q, %v", in, out, again, err)
			}
			if _, _, err := CheckTOTP(out, "000000", now, 0); err != nil {
				t.Fatalf("CheckTOTP(%q): %v", out, err)
			}
			key, err := otp.NewKeyFromURL(out)
			if err != nil {
				t.Fatalf("pquerna/otp cannot read %q: %v", out, err)
			}
			raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(key.Secret())
			if err != nil || len(raw) < 10 || len(raw) > 128 {
				t.Fatalf("pquerna/otp reads the secret of %q as %d bytes, %v", out, len(raw), err)
			}
		}
		if _, _, err := CheckTOTP(in, "123456", now, 0); err != nil {
			checkNoSecret(t, in, err)
		}
	})
}

// rawSecretParam finds secret parameters however broken the URL is.
var rawSecretParam = regexp.MustCompile(`(?i)secret=([^&#;]*)`)

// checkNoSecret fails t if err repeats 16 or more characters (the least a
// valid secret has) of base32 from anything in in that could be its secret:
// the whole input when bare, else each secret parameter, raw and decoded.
// White space and case are ignored, as ParseTOTP ignores them.
func checkNoSecret(t *testing.T, in string, err error) {
	t.Helper()
	candidates := []string{in}
	for _, m := range rawSecretParam.FindAllStringSubmatch(in, -1) {
		candidates = append(candidates, m[1])
		if v, err := url.QueryUnescape(m[1]); err == nil {
			candidates = append(candidates, v)
		}
	}
	msg := strings.ToUpper(err.Error())
	for _, c := range candidates {
		c = strings.ToUpper(strings.Join(strings.Fields(c), ""))
		for i := 0; i+16 <= len(c); i++ {
			w := c[i : i+16]
			if strings.Trim(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") == "" && strings.Contains(msg, w) {
				t.Fatalf("error %q repeats %q of the secret in %q", err, w, in)
			}
		}
	}
}
