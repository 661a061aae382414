package schemas

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
)

// scriptNames lists unicode.Scripts by name, the most used first, so that
// finding a rune's script usually takes a few lookups.
var scriptNames = func() []string {
	first := []string{"Common", "Inherited", "Latin", "Cyrillic", "Greek", "Han", "Hiragana", "Katakana", "Hangul", "Arabic", "Hebrew", "Devanagari", "Thai"}
	rest := slices.DeleteFunc(slices.Sorted(maps.Keys(unicode.Scripts)), func(n string) bool { return slices.Contains(first, n) })
	return append(first, rest...)
}()

// scriptOf returns the name of r's script ("Common" for ASCII symbols and
// digits, "Inherited" for combining marks), or "" when it has none.
func scriptOf(r rune) string {
	if r < 0x80 {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
			return "Latin"
		}
		return "Common"
	}
	for _, name := range scriptNames {
		if unicode.Is(unicode.Scripts[name], r) {
			return name
		}
	}
	return ""
}

// cjkSets are the combinations of scripts UTS #39 allows in one
// identifier beside a single script (its "highly restrictive" level):
// Japanese, Chinese with Bopomofo and Korean, each with Latin.
var cjkSets = [][]string{
	{"Latin", "Han", "Hiragana", "Katakana"},
	{"Latin", "Han", "Bopomofo"},
	{"Latin", "Han", "Hangul"},
}

// checkScripts refuses s when its letters come from more than one script,
// Common and Inherited aside, unless they are one of cjkSets: "pаypal" with
// a Cyrillic "а" reads as "paypal" and must not be someone else's. part
// names what s is within the identifier, for the message ("" for all of it).
func checkScripts(s, part string) error {
	var scripts []string
	for _, r := range s {
		sc := scriptOf(r)
		if sc == "Common" || sc == "Inherited" || sc == "" || slices.Contains(scripts, sc) {
			continue
		}
		scripts = append(scripts, sc)
	}
	if len(scripts) <= 1 {
		return nil
	}
	for _, set := range cjkSets {
		if !slices.ContainsFunc(scripts, func(sc string) bool { return !slices.Contains(set, sc) }) {
			return nil
		}
	}
	what := "mixes"
	if part != "" {
		what = part + " mixes"
	}
	return fmt.Errorf("%s letters from different scripts (%s): letters that look alike across scripts could pass for another identifier",
		what, strings.Join(scripts, ", "))
}
