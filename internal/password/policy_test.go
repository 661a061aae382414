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
