package password

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/identityd/identityd/model"
)

func TestPolicyCheck(t *testing.T) {
	t.Parallel()
	const (
		tooShort = "password must be at least 8 characters"
		tooLong  = "password must be at most 256 bytes"
		similar  = "password is too similar to the identifier"
		common   = "password is among the most commonly used passwords"
		// Control characters and invisible padding, from a security review:
		// eight spaces, eight NULs and eight zero-width spaces were passwords.
		control   = "password must not contain control characters (such as NUL, tab or newline)"
		invisible = "password must have at least 8 visible characters (spaces and invisible characters do not count)"
	)
	alice := []string{"alice@example.com"}
	for _, c := range []struct {
		name        string
		password    string
		identifiers []string
		want        string // "" for no violation
	}{
		{"ok", "correct horse battery staple", alice, ""},
		{"ok without identifiers", "correct horse battery staple", nil, ""},
		{"empty", "", alice, tooShort},
		{"7 characters", "abc4567", nil, tooShort},
		{"7 runes in 13 bytes", "пароль1", nil, tooShort},
		{"8 runes in 15 bytes", "пароль12", nil, ""},
		{"256 bytes", strings.Repeat("x9", 128), nil, ""},
		{"257 bytes", strings.Repeat("x", 257), nil, tooLong},
		{"129 runes in 258 bytes", strings.Repeat("é", 129), nil, tooLong},
		{"equal to identifier", "alice@example.com", alice, similar},
		{"identifier prefix", "alice@example", alice, similar},
		{"other case plus one", "Alice@Example.com1", alice, similar},
		{"upper case", "ALICE@EXAMPLE.COM", alice, similar},
		{"mostly the domain", "example.com2024", alice, similar},
		{"identifier reversed case, edits", "alice@exampl3.c0m", alice, similar},
		{"second identifier", "bobby_tables!", []string{"alice@example.com", "bobby_tables"}, similar},
		{"shares a short part", "alice loves long walks", alice, ""},
		{"empty identifier ignored", "correct horse battery staple", []string{""}, ""},
		{"common", "password1", nil, common},
		{"common, other case", "PassWord1", nil, common},
		{"common, 10 characters", "qwertyuiop", alice, common},
		{"common beats nothing else", "trustno1", alice, common},

		{"8 spaces", strings.Repeat(" ", 8), nil, invisible},
		{"8 NULs", strings.Repeat("\x00", 8), nil, control},
		{"8 zero-width spaces", strings.Repeat("\u200b", 8), nil, invisible},
		{"8 zero-width joiners", strings.Repeat("\u200d", 8), nil, invisible},
		{"8 byte order marks", strings.Repeat("\ufeff", 8), nil, invisible},
		{"8 soft hyphens", strings.Repeat("\u00ad", 8), nil, invisible},
		{"8 Hangul fillers", strings.Repeat("\u3164", 8), nil, invisible},
		{"8 halfwidth Hangul fillers", strings.Repeat("\uffa0", 8), nil, invisible},
		{"8 variation selectors", strings.Repeat("\ufe0f", 8), nil, invisible},
		{"8 no-break and ideographic spaces", strings.Repeat("\u00a0\u3000", 4), nil, invisible},
		{"7 visible and spaces", "z q 8 x k 2 w", nil, invisible},
		{"7 visible and zero-width spaces", "zq8\u200bxk2\u200bw\u200b", nil, invisible},
		{"8 visible and zero-width spaces", "zq8\u200bxk2\u200bwv\u200b", nil, ""},
		{"passphrase with leading and trailing spaces", "  zq8 xk2wv  ", nil, ""},
		{"NUL inside", "correct horse\x00battery", nil, control},
		{"NUL at the end", "correct horse battery\x00", nil, control},
		{"tab inside", "correct\thorse battery", nil, control},
		{"newline at the end", "correct horse battery\n", nil, control},
		{"carriage return", "correct horse\rbattery", nil, control},
		{"escape", "\x1b[31mcorrect horse", nil, control},
		{"DEL", "correct horse\x7fbattery", nil, control},
		{"C1 next line", "correct horse\u0085battery", nil, control},
		{"control beats too short", "\x00", nil, control},
		{"emoji with variation selectors", strings.Repeat("🔑\ufe0f", 8), nil, ""},
		{"combining marks count", "e\u0301e\u0301e\u0301e\u0301", nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := DefaultPolicy().Check(c.password, c.identifiers)
			if c.want == "" {
				if err != nil {
					t.Errorf("Check = %v, want nil", err)
				}
				return
			}
			var e *model.Error
			if !errors.As(err, &e) {
				t.Fatalf("Check = %v, want a *model.Error", err)
			}
			got := *e
			want := model.Error{Code: model.CodePasswordPolicy, Path: "/password", Message: c.want}
			if got != want {
				t.Errorf("Check = %+v, want %+v", got, want)
			}
			if c.password != "" && strings.Contains(e.Error(), c.password) {
				t.Errorf("error repeats the password")
			}
		})
	}
}

func TestPolicyZeroValueUsesDefaults(t *testing.T) {
	t.Parallel()
	var e *model.Error
	if err := (Policy{}).Check("short", nil); !errors.As(err, &e) || !strings.Contains(e.Message, "at least 8") {
		t.Errorf("Policy{}.Check(short) = %v, want the default minimum", err)
	}
	if err := (Policy{MinLength: 12}).Check("ten chars!", nil); err == nil {
		t.Errorf("MinLength 12 accepted 10 characters")
	}
}

func TestCommonPasswordList(t *testing.T) {
	t.Parallel()
	list, err := commonPasswords()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 100_000 {
		t.Errorf("list has %d entries, want 100000 (see gen-common.sh)", len(list))
	}
	if !slices.IsSorted(list) {
		t.Errorf("list is not sorted")
	}
	for _, p := range list {
		if p != strings.ToLower(p) || p == "" {
			t.Fatalf("entry %q is empty or not lower-case", p)
		}
	}
}

func TestSimilarityMeasures(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b          string
		distance, lcs int
	}{
		{"", "", 0, 0},
		{"abc", "", 3, 0},
		{"kitten", "sitting", 3, 3},
		{"flaw", "lawn", 2, 3},
		{"日本語", "日本", 1, 2},
		{"alice@example.com", "alice@example", 4, 13},
	} {
		a, b := []rune(c.a), []rune(c.b)
		if got := levenshtein(a, b); got != c.distance {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", c.a, c.b, got, c.distance)
		}
		if got := levenshtein(b, a); got != c.distance {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", c.b, c.a, got, c.distance)
		}
		if got := longestCommonSubstring(a, b); got != c.lcs {
			t.Errorf("longestCommonSubstring(%q, %q) = %d, want %d", c.a, c.b, got, c.lcs)
		}
	}
}
