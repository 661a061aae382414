package password

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

// commonGz is 100,000 of the most used passwords of at least 8 characters,
// lower-cased, one a line, sorted. gen-common.sh makes it; its source and
// licence are in COMMON-PASSWORDS-SOURCE.md.
//
//go:embed common-passwords.txt.gz
var commonGz []byte

// commonPasswords decompresses the list on first use, so a process that never
// checks a new password never pays for it. A sorted slice of substrings of one
// string takes about 2.5 MB, a third of what a map of the same entries would.
var commonPasswords = sync.OnceValues(func() ([]string, error) {
	zr, err := gzip.NewReader(bytes.NewReader(commonGz))
	if err != nil {
		return nil, fmt.Errorf("password: reading the common password list: %w", err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("password: reading the common password list: %w", err)
	}
	list := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	// gen-common.sh lower-cases ASCII only; lower-case here too, the way
	// Check does, so that both sides agree on non-ASCII letters.
	for i, p := range list {
		list[i] = strings.ToLower(p)
	}
	slices.Sort(list)
	return slices.Compact(list), nil
})

// isCommon reports whether password, ignoring case, is on the list.
func isCommon(password string) (bool, error) {
	list, err := commonPasswords()
	if err != nil {
		return false, err
	}
	_, found := slices.BinarySearch(list, strings.ToLower(password))
	return found, nil
}
