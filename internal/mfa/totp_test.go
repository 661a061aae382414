package mfa

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"image/png"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// testSecret is 20 bytes of base32, the size NewTOTP makes.
const testSecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

// codeAt computes the code of a key at t with pquerna/otp's TOTP, as an
// authenticator app would: the tests never share arithmetic with the code
// under test.
func codeAt(t *testing.T, secret string, at time.Time, alg otp.Algorithm, digits otp.Digits, period uint) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: period, Digits: digits, Algorithm: alg})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func TestNewTOTP(t *testing.T) {
	tests := []struct{ issuer, account string }{
		{"identityd", "alice@example.com"},
		{"ACME & Co+", "bob+tag@example.com"},
		{"Example Inc.", "user name with spaces"},
		{"x", "id:with:colons"},
		{"q=1?", "a/b?c#d&e=f%g"},
		{"ünïcode", "ユーザー"},
		{"identityd", "0b5b3a4e-2f1c-4d8e-9a7b-6c5d4e3f2a1b"},
	}
	for _, tt := range tests {
		t.Run(tt.account, func(t *testing.T) {
			seed := bytes.Repeat([]byte{0xa5, 0x3c}, TOTPSecretBytes/2)
			secret, url, err := NewTOTP(tt.issuer, tt.account, bytes.NewReader(seed))
			if err != nil {
				t.Fatal(err)
			}
			if want := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(seed); secret != want {
				t.Errorf("secret %q, want %q (the random bytes, base32, unpadded)", secret, want)
			}
			if !strings.HasPrefix(url, "otpauth://totp/") || !strings.Contains(url, "?secret="+secret+"&issuer=") ||
				!strings.HasSuffix(url, "&algorithm=SHA1&digits=6&period=30") {
				t.Errorf("url %q is not of the documented form", url)
			}

			key, err := otp.NewKeyFromURL(url)
			if err != nil {
				t.Fatal(err)
			}
			got := []any{key.Type(), key.Issuer(), key.AccountName(), key.Secret(), key.Algorithm(), key.Digits(), key.Period()}
			want := []any{"totp", tt.issuer, tt.account, secret, otp.AlgorithmSHA1, otp.DigitsSix, uint64(30)}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("pquerna/otp reads %v, want %v (url %q)", got, want, url)
					break
				}
			}

			again, err := ParseTOTP(url, "other", "other")
			if err != nil || again != url {
				t.Errorf("ParseTOTP(NewTOTP's url) = %q, %v; want it unchanged", again, err)
			}
		})
	}
}

func TestNewTOTPIsRandom(t *testing.T) {
	a, _, err := NewTOTP("identityd", "alice", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := NewTOTP("identityd", "alice", rand.Reader)
	if a == b || len(a) != 32 {
		t.Errorf("secrets %q and %q: want two different 32-character secrets", a, b)
	}
}

func TestNewTOTPRefuses(t *testing.T) {
	tests := []struct {
		name, issuer, account string
		random                []byte
		want                  string
	}{
		{"no issuer", "", "alice", make([]byte, 20), "totp: no issuer"},
		{"colon in issuer", "a:b", "alice", make([]byte, 20), "totp: issuer must not contain a colon"},
		{"no account", "identityd", "", make([]byte, 20), "totp: no account name"},
		{"random runs dry", "identityd", "alice", make([]byte, 19), "totp: reading random"},
		{"too long", "identityd", strings.Repeat("?", 1000), make([]byte, 20), "longer than 2048 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret, url, err := NewTOTP(tt.issuer, tt.account, bytes.NewReader(tt.random))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewTOTP = %q, %q, %v; want an error saying %q", secret, url, err, tt.want)
			}
		})
	}
}

func TestCheckTOTP(t *testing.T) {
	_, url, err := NewTOTP("identityd", "alice@example.com", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := otp.NewKeyFromURL(url)
	now := time.Unix(1_700_000_015, 0) // mid-step
	step := now.Unix() / 30
	code := func(offset time.Duration) string {
		return codeAt(t, key.Secret(), now.Add(offset), otp.AlgorithmSHA1, otp.DigitsSix, 30)
	}

	tests := []struct {
		name     string
		code     string
		lastStep int64
		wantStep int64
		wantOK   bool
	}{
		{"now", code(0), 0, step, true},
		{"a step ago", code(-30 * time.Second), 0, step - 1, true},
		{"a step ahead", code(30 * time.Second), 0, step + 1, true},
		{"end of this step", code(14 * time.Second), 0, step, true},
		{"two steps ago", code(-60 * time.Second), 0, 0, false},
		{"two steps ahead", code(60 * time.Second), 0, 0, false},
		{"replayed", code(0), step, 0, false},
		{"older after newer", code(-30 * time.Second), step, 0, false},
		{"newer after older", code(30 * time.Second), step, step + 1, true},
		{"after a skewed one", code(0), step + 1, 0, false},
		{"last step just before", code(0), step - 1, step, true},
		{"surrounding space", " " + code(0) + "\n", 0, step, true},
		{"empty", "", 0, 0, false},
		{"short", code(0)[:5], 0, 0, false},
		{"long", code(0) + "0", 0, 0, false},
		{"letter", code(0)[:5] + "a", 0, 0, false},
		{"sign", "+" + code(0)[1:], 0, 0, false},
		{"inner space", code(0)[:3] + " " + code(0)[3:], 0, 0, false},
		{"full-width digits", "１２３４５６", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotStep, ok, err := CheckTOTP(url, tt.code, now, tt.lastStep)
			if err != nil {
				t.Fatal(err)
			}
			if gotStep != tt.wantStep || ok != tt.wantOK {
				t.Errorf("CheckTOTP(%q, lastStep %d) = %d, %v; want %d, %v", tt.code, tt.lastStep, gotStep, ok, tt.wantStep, tt.wantOK)
			}
		})
	}
}

// TestCheckTOTPOnce walks a user through a few logins: each code works once,
// and the step returned is what keeps it from working again.
func TestCheckTOTPOnce(t *testing.T) {
	secret, url, err := NewTOTP("identityd", "alice", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	var last int64
	for i := range 5 {
		at := now.Add(time.Duration(i) * 30 * time.Second)
		c := codeAt(t, secret, at, otp.AlgorithmSHA1, otp.DigitsSix, 30)
		step, ok, err := CheckTOTP(url, c, at, last)
		if err != nil || !ok {
			t.Fatalf("login %d: CheckTOTP = %d, %v, %v", i, step, ok, err)
		}
		if _, ok, _ := CheckTOTP(url, c, at, step); ok {
			t.Fatalf("login %d: the same code was accepted twice", i)
		}
		last = step
	}
}

// TestRFC6238 runs the test vectors of RFC 6238, appendix B, through
// ParseTOTP and CheckTOTP: 8 digits, 30 seconds, the ASCII seeds given there.
func TestRFC6238(t *testing.T) {
	seeds := map[string]string{
		"SHA1":   "12345678901234567890",
		"SHA256": "12345678901234567890123456789012",
		"SHA512": "1234567890123456789012345678901234567890123456789012345678901234",
	}
	vectors := []struct {
		at                   int64
		sha1, sha256, sha512 string
	}{
		{59, "94287082", "46119246", "90693936"},
		{1111111109, "07081804", "68084774", "25091201"},
		{1111111111, "14050471", "67062674", "99943326"},
		{1234567890, "89005924", "91819424", "93441116"},
		{2000000000, "69279037", "90698825", "38618901"},
		{20000000000, "65353130", "77737706", "47863826"},
	}
	for _, alg := range []string{"SHA1", "SHA256", "SHA512"} {
		secret := base32.StdEncoding.EncodeToString([]byte(seeds[alg])) // padded, as an import may be
		url, err := ParseTOTP("otpauth://totp/RFC:6238?secret="+secret+"&algorithm="+alg+"&digits=8&period=30", "", "")
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		for _, v := range vectors {
			code := map[string]string{"SHA1": v.sha1, "SHA256": v.sha256, "SHA512": v.sha512}[alg]
			step, ok, err := CheckTOTP(url, code, time.Unix(v.at, 0), 0)
			if err != nil || !ok || step != v.at/30 {
				t.Errorf("%s at %d: CheckTOTP(%s) = %d, %v, %v; want %d, true", alg, v.at, code, step, ok, err, v.at/30)
			}
			if _, ok, _ := CheckTOTP(url, code, time.Unix(v.at+90, 0), 0); ok {
				t.Errorf("%s at %d: the code was accepted three steps later", alg, v.at)
			}
		}
	}
}

// TestKratosImport: Kratos makes its totp_url with pquerna/otp's Generate;
// such a URL is accepted as it is and gives the same codes.
func TestKratosImport(t *testing.T) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "kratos.example", AccountName: "alice@example.com", Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	url, err := ParseTOTP(key.URL(), "identityd", "someone-else")
	if err != nil {
		t.Fatal(err)
	}
	want := "otpauth://totp/kratos.example:alice@example.com?secret=" + key.Secret() +
		"&issuer=kratos.example&algorithm=SHA1&digits=6&period=30"
	if url != want {
		t.Errorf("ParseTOTP = %q, want %q", url, want)
	}
	now := time.Now()
	if _, ok, err := CheckTOTP(url, codeAt(t, key.Secret(), now, otp.AlgorithmSHA1, otp.DigitsSix, 30), now, 0); !ok || err != nil {
		t.Errorf("the imported key's current code was refused: %v", err)
	}
}

func TestParseTOTPAccepts(t *testing.T) {
	const norm = "otpauth://totp/identityd:alice@example.com?secret=" + testSecret + "&issuer=identityd&algorithm=SHA1&digits=6&period=30"
	lower := strings.ToLower(testSecret)
	spaced := "jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp"
	// 16 bytes: base32 of 26 characters and 6 of padding.
	padded := base32.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	tests := []struct{ name, in, want string }{
		{"bare", testSecret, norm},
		{"bare lower case", lower, norm},
		{"bare with spaces", spaced, norm},
		{"bare padded", padded, strings.Replace(norm, testSecret, strings.TrimRight(padded, "="), 1)},
		{"bare, surrounding space", "\t" + testSecret + "\n", norm},
		{"url", norm, norm},
		{"url, defaults", "otpauth://totp/identityd:alice@example.com?secret=" + testSecret, norm},
		{"url, lower case and padding", "otpauth://totp/identityd:alice@example.com?secret=" + lower + "%3D%3D&issuer=identityd", norm},
		{"url, spaces in the secret", "otpauth://totp/identityd:alice@example.com?secret=" + strings.ReplaceAll(spaced, " ", "%20"), norm},
		{"url, upper-case scheme and type", "OTPAUTH://TOTP/identityd:alice@example.com?secret=" + testSecret, norm},
		{"url, no label", "otpauth://totp/?secret=" + testSecret, norm},
		{"url, account only", "otpauth://totp/bob?secret=" + testSecret, strings.Replace(norm, "alice@example.com", "bob", 1)},
		{"url, its own issuer", "otpauth://totp/Other%20Co:bob?secret=" + testSecret + "&issuer=Other%20Co",
			"otpauth://totp/Other%20Co:bob?secret=" + testSecret + "&issuer=Other%20Co&algorithm=SHA1&digits=6&period=30"},
		{"url, issuer parameter wins", "otpauth://totp/Label:bob?issuer=Param&secret=" + testSecret,
			"otpauth://totp/Param:bob?secret=" + testSecret + "&issuer=Param&algorithm=SHA1&digits=6&period=30"},
		{"url, encoded colon", "otpauth://totp/Co%3Abob?secret=" + testSecret,
			"otpauth://totp/Co:bob?secret=" + testSecret + "&issuer=Co&algorithm=SHA1&digits=6&period=30"},
		{"url, sha256, 8 digits, 60 s", "otpauth://totp/identityd:alice@example.com?secret=" + testSecret + "&algorithm=sha256&digits=8&period=60",
			strings.Replace(norm, "SHA1&digits=6&period=30", "SHA256&digits=8&period=60", 1)},
		{"url, sha512, 15 s", "otpauth://totp/identityd:alice@example.com?secret=" + testSecret + "&algorithm=SHA512&period=15",
			strings.Replace(norm, "SHA1&digits=6&period=30", "SHA512&digits=6&period=15", 1)},
		{"url, 120 s", "otpauth://totp/identityd:alice@example.com?secret=" + testSecret + "&period=120",
			strings.Replace(norm, "period=30", "period=120", 1)},
		{"url, unknown parameters dropped", "otpauth://totp/identityd:alice@example.com?secret=" + testSecret + "&image=https://x/y.png&foo=bar", norm},
		{"shortest secret", strings.Repeat("A", 16), strings.Replace(norm, testSecret, strings.Repeat("A", 16), 1)},
		{"longest secret", strings.Repeat("A", 205), strings.Replace(norm, testSecret, strings.Repeat("A", 205), 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTOTP(tt.in, "identityd", "alice@example.com")
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ParseTOTP(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
			if again, err := ParseTOTP(got, "x", "y"); again != got || err != nil {
				t.Errorf("ParseTOTP is not idempotent: %q → %q, %v", got, again, err)
			}
		})
	}
}

func TestParseTOTPRefuses(t *testing.T) {
	const label = "otpauth://totp/identityd:alice@example.com?secret="
	tests := []struct {
		name, in, issuer, want string
	}{
		{"empty", "", "identityd", "totp secret: empty"},
		{"bare, not base32", testSecret[:31] + "1", "identityd", "totp secret: not base32"},
		{"bare, bad length", testSecret + "A", "identityd", "totp secret: not base32"},
		{"bare, inner padding", testSecret[:16] + "=" + testSecret[16:], "identityd", "totp secret: not base32"},
		{"bare, too short", strings.Repeat("A", 15), "identityd", "totp secret: too short (9 bytes, at least 10)"},
		{"bare, too long", strings.Repeat("A", 208), "identityd", "totp secret: too long (130 bytes, at most 128)"},
		{"bare, no issuer", testSecret, "", "totp: no issuer"},
		{"bare, colon in issuer", testSecret, "a:b", "totp: issuer must not contain a colon"},
		{"too long", testSecret + strings.Repeat(" ", 2048-len(testSecret)+1), "identityd", "totp: key is longer than 2048 bytes"},
		{"too long url", label + testSecret + "&x=" + strings.Repeat("y", 2048), "identityd", "totp: key is longer than 2048 bytes"},
		{"not a url", "otpauth://totp/%zz?secret=" + testSecret, "identityd", "totp url: not a valid URL"},
		{"other scheme", "https://totp/identityd:alice?secret=" + testSecret, "identityd", "totp url: scheme is not otpauth"},
		{"opaque", "otpauth:totp/identityd:alice?secret=" + testSecret, "identityd", "totp url: not of the form otpauth://totp/"},
		{"hotp", "otpauth://hotp/identityd:alice?secret=" + testSecret + "&counter=1", "identityd", "totp url: type hotp is not supported (only totp)"},
		{"type hiding a secret", "otpauth://" + testSecret + "/identityd:alice?secret=" + testSecret, "identityd", "totp url: type is not supported"},
		{"bad query", label + testSecret + "&%zz", "identityd", "totp url: parameters are not a valid query"},
		{"no secret", "otpauth://totp/identityd:alice", "identityd", "totp url: no secret"},
		{"empty secret", label + "&digits=6", "identityd", "totp url: secret: empty"},
		{"secret not base32", label + testSecret[:31] + "8", "identityd", "totp url: secret: not base32"},
		{"secret too short", label + "AAAAAAAA", "identityd", "totp url: secret: too short (5 bytes, at least 10)"},
		{"secret twice", label + testSecret + "&secret=" + testSecret, "identityd", "totp url: secret is given more than once"},
		{"digits twice", label + testSecret + "&digits=6&digits=8", "identityd", "totp url: digits is given more than once"},
		{"md5", label + testSecret + "&algorithm=MD5", "identityd", "totp url: algorithm MD5 is not supported (want SHA1, SHA256 or SHA512)"},
		{"sha224", label + testSecret + "&algorithm=sha224", "identityd", "totp url: algorithm sha224 is not supported"},
		{"algorithm hiding a secret", label + testSecret + "&algorithm=" + testSecret, "identityd", "totp url: algorithm is not supported"},
		{"7 digits", label + testSecret + "&digits=7", "identityd", "totp url: digits 7 is not supported (want 6 or 8)"},
		{"0 digits", label + testSecret + "&digits=0", "identityd", "totp url: digits 0 is not supported"},
		{"digits not a number", label + testSecret + "&digits=six", "identityd", "totp url: digits six is not supported"},
		{"period 14", label + testSecret + "&period=14", "identityd", "totp url: period 14 is out of range (want 15 to 120 seconds)"},
		{"period 121", label + testSecret + "&period=121", "identityd", "totp url: period 121 is out of range"},
		{"period 0", label + testSecret + "&period=0", "identityd", "totp url: period 0 is out of range"},
		{"period negative", label + testSecret + "&period=-30", "identityd", "totp url: period -30 is out of range"},
		{"period huge", label + testSecret + "&period=99999999999999999999999", "identityd", "totp url: period is out of range"},
		{"steam", label + testSecret + "&encoder=steam", "identityd", "totp url: encoder is not supported"},
		{"colon in issuer parameter", label + testSecret + "&issuer=a%3Ab", "identityd", "totp: issuer must not contain a colon"},
		{"no issuer anywhere", "otpauth://totp/alice?secret=" + testSecret, "", "totp: no issuer"},
		{"no account anywhere", "otpauth://totp/identityd:?secret=" + testSecret, "identityd", "totp: no account name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			account := "alice@example.com"
			if strings.HasPrefix(tt.name, "no account") {
				account = ""
			}
			got, err := ParseTOTP(tt.in, tt.issuer, account)
			if err == nil {
				t.Fatalf("ParseTOTP = %q, want an error saying %q", got, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\n does not say %q", err, tt.want)
			}
			for _, leak := range []string{testSecret, testSecret[:16], strings.ToLower(testSecret[:16]), "AAAAAAAA"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error %q repeats the secret", err)
				}
			}
		})
	}
}

func TestCheckTOTPUnusableURL(t *testing.T) {
	for _, url := range []string{"", testSecret, "otpauth://hotp/x:y?secret=" + testSecret, "otpauth://totp/x:y?secret=abc", "otpauth://totp/x:y?secret=" + testSecret + "&digits=7"} {
		if _, ok, err := CheckTOTP(url, "123456", time.Now(), 0); err == nil || ok {
			t.Errorf("CheckTOTP(%q) = %v, %v; want an error", url, ok, err)
		} else if strings.Contains(err.Error(), testSecret) {
			t.Errorf("error %q repeats the secret", err)
		}
	}
}

func TestQRCodePNG(t *testing.T) {
	_, url, err := NewTOTP("identityd", "alice@example.com", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	data, err := QRCodePNG(url)
	if err != nil {
		t.Fatal(err)
	}
	b64, ok := strings.CutPrefix(data, "data:image/png;base64,")
	if !ok {
		t.Fatalf("%.40q… is not a PNG data URL", data)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 256 || b.Dy() != 256 {
		t.Errorf("image is %v, want 256×256", b)
	}
	dark := 0
	for y := range 256 {
		for x := range 256 {
			if r, _, _, _ := img.At(x, y).RGBA(); r < 0x8000 {
				dark++
			}
		}
	}
	if dark < 256*256/5 || dark > 256*256*4/5 {
		t.Errorf("%d of %d pixels are dark: not a QR code", dark, 256*256)
	}

	if _, err := QRCodePNG("https://example.com/?secret=" + testSecret); err == nil || strings.Contains(err.Error(), testSecret) {
		t.Errorf("QRCodePNG of a non-otpauth url: error %v", err)
	}
}
