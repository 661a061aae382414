package mfa

import (
	"bytes"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
)

// The parameters of keys made here: what Google Authenticator and every
// other app read, and what Kratos makes.
const (
	// TOTPPeriod is the seconds one code lives.
	TOTPPeriod = 30
	// TOTPDigits is the length of a code.
	TOTPDigits = 6
	// TOTPSecretBytes is the length of a new key: 160 bits, as RFC 4226
	// recommends for HMAC-SHA1.
	TOTPSecretBytes = 20
)

// Bounds on imported keys. A secret of 80 bits is the least RFC 4226 allows
// (and what older apps made); the rest is what authenticator apps can be
// expected to read.
const (
	maxKeyBytes     = 2048
	minSecretBytes  = 10
	maxSecretBytes  = 128
	minPeriod       = 15
	maxPeriod       = 120
	qrSize          = 256
	maxEchoedLength = 10
)

// b32 is the secret's encoding in an otpauth URL: RFC 4648 base32, upper
// case, padding dropped as Google Authenticator writes it.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// totpKey is a parsed and checked otpauth://totp/ URL.
type totpKey struct {
	issuer, account string
	secret          string // base32, upper case, no padding
	algorithm       otp.Algorithm
	digits          otp.Digits
	period          int64
}

// NewTOTP makes a new key of TOTPSecretBytes from random for account at
// issuer, with the parameters every app reads (SHA1, TOTPDigits,
// TOTPPeriod). account may be any string (an email, a username, an id);
// issuer may not contain a colon, which separates the two in the URL's label.
// It returns the secret in base32 (upper case, no padding), for users who
// type it in, and the otpauth URL
//
//	otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30
//
// which is what is stored (encrypted) and shown as a QR code.
func NewTOTP(issuer, account string, random io.Reader) (secret, url string, err error) {
	k := totpKey{issuer: issuer, account: account, algorithm: otp.AlgorithmSHA1, digits: TOTPDigits, period: TOTPPeriod}
	if err := k.checkLabel(); err != nil {
		return "", "", fmt.Errorf("totp: %w", err)
	}
	if random == nil {
		return "", "", errors.New("totp: no random source")
	}
	raw := make([]byte, TOTPSecretBytes)
	if _, err := io.ReadFull(random, raw); err != nil {
		return "", "", fmt.Errorf("totp: reading random: %w", err)
	}
	k.secret = b32.EncodeToString(raw)
	url, err = k.url()
	if err != nil {
		return "", "", fmt.Errorf("totp: %w", err)
	}
	return k.secret, url, nil
}

// ParseTOTP checks a key brought from elsewhere (an import, Kratos's
// totp_url) and returns it as a normalised otpauth URL, in the form NewTOTP
// makes. urlOrSecret is either
//
//   - an otpauth://totp/ URL: algorithm SHA1, SHA256 or SHA512 (SHA1 when
//     absent), digits 6 or 8 (6), period 15 to 120 seconds (30); its issuer
//     and account name are kept, and issuer and account fill them in only
//     when the URL has none; or
//   - a bare base32 secret: then the key is SHA1, 6 digits, 30 seconds, for
//     issuer and account.
//
// The secret may be in lower case, padded and split by spaces, and must
// decode to 10 to 128 bytes. Input longer than 2048 bytes is refused before
// any parsing. Errors say which rule failed ("totp secret: not base32",
// "totp url: algorithm MD5 is not supported …") and never repeat the
// secret.
func ParseTOTP(urlOrSecret, issuer, account string) (url string, err error) {
	if len(urlOrSecret) > maxKeyBytes {
		return "", fmt.Errorf("totp: key is longer than %d bytes", maxKeyBytes)
	}
	s := strings.TrimSpace(urlOrSecret)
	var k totpKey
	if strings.Contains(s, ":") { // a base32 secret never has one; a URL always does
		if k, err = parseKeyURL(s); err != nil {
			return "", err
		}
	} else {
		k = totpKey{algorithm: otp.AlgorithmSHA1, digits: TOTPDigits, period: TOTPPeriod}
		if k.secret, err = normaliseSecret(s); err != nil {
			return "", fmt.Errorf("totp secret: %w", err)
		}
	}
	if k.issuer == "" {
		k.issuer = issuer
	}
	if k.account == "" {
		k.account = account
	}
	if err := k.checkLabel(); err != nil {
		return "", fmt.Errorf("totp: %w", err)
	}
	if url, err = k.url(); err != nil {
		return "", fmt.Errorf("totp: %w", err)
	}
	return url, nil
}

// CheckTOTP reports whether code is the key's code at the time step before
// now, at now, or after now (one step of clock skew either way) and that step
// is later than lastStep. It returns the step that matched, for the caller to
// store as the new lastStep, so that a code is accepted once and no older
// code is accepted after a newer one. For a key never used, pass 0: every
// step of a real clock is greater.
//
// The codes of all three steps are computed and compared in constant time,
// whichever matches. Surrounding white space is ignored; a code of the wrong
// length or with anything but digits is not ok, with no error: err is only
// for a key URL that cannot be used.
func CheckTOTP(url, code string, now time.Time, lastStep int64) (step int64, ok bool, err error) {
	k, err := parseStoredKeyURL(url)
	if err != nil {
		return 0, false, err
	}
	code = strings.TrimSpace(code)
	if len(code) != int(k.digits) || strings.Trim(code, "0123456789") != "" {
		return 0, false, nil
	}
	opts := hotp.ValidateOpts{Digits: k.digits, Algorithm: k.algorithm}
	current := floorDiv(now.Unix(), k.period)
	var matched int64
	found := 0
	for s := current - 1; s <= current+1; s++ {
		if s < 0 {
			continue
		}
		want, err := hotp.GenerateCodeCustom(k.secret, uint64(s), opts)
		if err != nil {
			return 0, false, fmt.Errorf("totp: computing a code: %w", err)
		}
		eq := subtle.ConstantTimeCompare([]byte(want), []byte(code))
		if s <= lastStep { // public, unlike the code: no need to hide it
			eq = 0
		}
		// matched = s if eq, without a branch on the comparison: the
		// latest matching step wins, which refuses the most on replay.
		mask := -int64(eq)
		matched = s&mask | matched&^mask
		found |= eq
	}
	if found == 0 {
		return 0, false, nil
	}
	return matched, true, nil
}

// QRCodePNG renders an otpauth URL as a 256×256 PNG QR code and returns it
// as a data URL ("data:image/png;base64,…") for an <img> src.
func QRCodePNG(url string) (string, error) {
	if _, err := parseStoredKeyURL(url); err != nil {
		return "", fmt.Errorf("qr code: %w", err)
	}
	key, err := otp.NewKeyFromURL(url)
	if err != nil { // its message quotes the URL, secret and all
		return "", errors.New("qr code: totp url: not a valid URL")
	}
	img, err := key.Image(qrSize, qrSize)
	if err != nil { // boombuler's messages may quote the content
		return "", errors.New("qr code: the url cannot be encoded as a QR code")
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", fmt.Errorf("qr code: encoding the png: %w", err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// parseStoredKeyURL parses a URL as stored (made by NewTOTP or ParseTOTP),
// with the same bounds as an import. The label is not needed to compute
// codes, so it is not required.
func parseStoredKeyURL(s string) (totpKey, error) {
	if len(s) > maxKeyBytes {
		return totpKey{}, fmt.Errorf("totp url: longer than %d bytes", maxKeyBytes)
	}
	return parseKeyURL(strings.TrimSpace(s))
}

// parseKeyURL parses and checks an otpauth://totp/ URL. The label is read as
// pquerna/otp reads it (the issuer parameter first, else the label up to its
// first colon; the account name after that colon, else the whole label), so
// that what is stored is what apps show.
func parseKeyURL(s string) (totpKey, error) {
	u, err := url.Parse(s)
	if err != nil { // url's message quotes the input
		return totpKey{}, errors.New("totp url: not a valid URL")
	}
	if u.Scheme != "otpauth" { // url.Parse lower-cases the scheme
		return totpKey{}, errors.New("totp url: scheme is not otpauth")
	}
	if u.Opaque != "" || u.User != nil {
		return totpKey{}, errors.New("totp url: not of the form otpauth://totp/LABEL?PARAMETERS")
	}
	if !strings.EqualFold(u.Host, "totp") {
		return totpKey{}, fmt.Errorf("totp url: type%s is not supported (only totp)", echo(u.Host))
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil { // its message may quote the secret
		return totpKey{}, errors.New("totp url: parameters are not a valid query")
	}
	for _, name := range []string{"secret", "issuer", "algorithm", "digits", "period", "encoder"} {
		if len(q[name]) > 1 {
			return totpKey{}, fmt.Errorf("totp url: %s is given more than once", name)
		}
	}

	k := totpKey{algorithm: otp.AlgorithmSHA1, digits: TOTPDigits, period: TOTPPeriod}
	label := strings.TrimPrefix(u.Path, "/")
	if prefix, account, ok := strings.Cut(label, ":"); ok {
		k.issuer, k.account = prefix, account
	} else {
		k.account = label
	}
	if issuer := q.Get("issuer"); issuer != "" {
		k.issuer = issuer
	}

	if !q.Has("secret") {
		return totpKey{}, errors.New("totp url: no secret")
	}
	if k.secret, err = normaliseSecret(q.Get("secret")); err != nil {
		return totpKey{}, fmt.Errorf("totp url: secret: %w", err)
	}
	switch a := q.Get("algorithm"); strings.ToUpper(a) {
	case "", "SHA1":
		k.algorithm = otp.AlgorithmSHA1
	case "SHA256":
		k.algorithm = otp.AlgorithmSHA256
	case "SHA512":
		k.algorithm = otp.AlgorithmSHA512
	default:
		return totpKey{}, fmt.Errorf("totp url: algorithm%s is not supported (want SHA1, SHA256 or SHA512)", echo(a))
	}
	switch d := q.Get("digits"); d {
	case "", "6":
		k.digits = otp.DigitsSix
	case "8":
		k.digits = otp.DigitsEight
	default:
		return totpKey{}, fmt.Errorf("totp url: digits%s is not supported (want 6 or 8)", echo(d))
	}
	if p := q.Get("period"); p != "" {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n < minPeriod || n > maxPeriod {
			return totpKey{}, fmt.Errorf("totp url: period%s is out of range (want %d to %d seconds)", echo(p), minPeriod, maxPeriod)
		}
		k.period = n
	}
	if q.Get("encoder") != "" { // Steam's letters: codes no app of ours shows
		return totpKey{}, errors.New("totp url: encoder is not supported (only decimal codes)")
	}
	return k, nil
}

// normaliseSecret reads a base32 secret as people and apps write it (lower
// case, padded or not, in groups split by spaces) and returns it in the one
// form stored: upper case, unpadded. Its errors never quote the input.
func normaliseSecret(s string) (string, error) {
	s = strings.TrimRight(strings.Join(strings.Fields(s), ""), "=")
	if s == "" {
		return "", errors.New("empty")
	}
	upper := []byte(s)
	for i, c := range upper {
		if 'a' <= c && c <= 'z' {
			upper[i] = c - 'a' + 'A'
		}
	}
	// 1, 3 or 6 characters past a group of 8 hold no whole byte: Go's
	// decoder would drop them silently, hiding a typo.
	raw, err := b32.DecodeString(string(upper))
	if n := len(upper) % 8; err != nil || n == 1 || n == 3 || n == 6 {
		return "", errors.New("not base32")
	}
	switch {
	case len(raw) < minSecretBytes:
		return "", fmt.Errorf("too short (%d bytes, at least %d)", len(raw), minSecretBytes)
	case len(raw) > maxSecretBytes:
		return "", fmt.Errorf("too long (%d bytes, at most %d)", len(raw), maxSecretBytes)
	}
	return b32.EncodeToString(raw), nil
}

// checkLabel checks what the URL's label needs: an issuer without a colon
// (it would move the label's split, and apps would show another account) and
// an account name.
func (k totpKey) checkLabel() error {
	switch {
	case k.issuer == "":
		return errors.New("no issuer")
	case strings.Contains(k.issuer, ":"):
		return errors.New("issuer must not contain a colon")
	case k.account == "":
		return errors.New("no account name")
	}
	return nil
}

// url writes the key as an otpauth URL. It is written here rather than by
// pquerna/otp's Generate, whose query escaping leaves "&", "=" and "+" as
// they are, so that an issuer such as "A&B" would come back as "A".
// Spaces are written %20, not "+", which some apps show as it is.
func (k totpKey) url() (string, error) {
	u := url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + k.issuer + ":" + k.account}
	u.RawQuery = "secret=" + k.secret +
		"&issuer=" + strings.ReplaceAll(url.QueryEscape(k.issuer), "+", "%20") +
		"&algorithm=" + k.algorithm.String() +
		"&digits=" + k.digits.String() +
		"&period=" + strconv.FormatInt(k.period, 10)
	s := u.String()
	if len(s) > maxKeyBytes {
		return "", fmt.Errorf("url would be longer than %d bytes: issuer or account name too long", maxKeyBytes)
	}
	return s, nil
}

// echo returns " "+v for an error message when v is short and plain (a
// parameter value such as "MD5" or "7"), else "". A value that could hold a
// secret, or text meant to fool a reader of logs, is never repeated.
func echo(v string) string {
	if v == "" || len(v) > maxEchoedLength {
		return ""
	}
	for _, c := range v {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return ""
		}
	}
	return " " + v
}

// floorDiv divides rounding toward minus infinity, so that times before 1970
// fall in the step they belong to.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
