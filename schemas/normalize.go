package schemas

import (
	"errors"
	"strings"

	"github.com/nyaruka/phonenumbers"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// telFormat is the "tel" format Kratos schemas use for phone numbers.
var telFormat = &jsonschema.Format{
	Name: "tel",
	Validate: func(v any) error {
		s, ok := v.(string)
		if !ok {
			return nil // format applies to strings only
		}
		_, err := parsePhone(s)
		return err
	},
}

// parsePhone accepts international numbers only. A leading + is required
// because parsing with a default region silently turns bad input (a local
// number, a typo) into a valid number of some other country.
func parsePhone(s string) (*phonenumbers.PhoneNumber, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "+") {
		return nil, errors.New("a phone number must start with + and the country code")
	}
	n, err := phonenumbers.Parse(s, "")
	if err != nil {
		return nil, errors.New("not a phone number")
	}
	if !phonenumbers.IsValidNumber(n) {
		return nil, errors.New("not a valid phone number")
	}
	return n, nil
}

// NormalizeIdentifier normalises a trait value marked as identifier or
// address given the trait's JSON-schema "format", so that the stored form
// does not depend on how the user typed it: email is trimmed and lower-cased,
// tel becomes E.164 (+14155552671), anything else is trimmed and lower-cased
// as Kratos does for password identifiers (usernames are case-insensitive).
func NormalizeIdentifier(value, format string) string {
	if format == "tel" {
		if n, err := parsePhone(value); err == nil {
			return phonenumbers.Format(n, phonenumbers.E164)
		}
	}
	return strings.ToLower(strings.TrimSpace(value))
}

// LoginCandidates returns the normalised forms under which a login
// identifier typed by a user may be stored, most likely first: trimmed and
// lower-cased, plus E.164 when it parses as a phone number with a leading +.
// Login does not know which trait the user meant, so it looks up each form.
// The result has no duplicates and is empty for a blank identifier.
func LoginCandidates(identifier string) []string {
	plain := NormalizeIdentifier(identifier, "")
	if plain == "" {
		return nil
	}
	out := []string{plain}
	if tel := NormalizeIdentifier(identifier, "tel"); tel != plain {
		out = append(out, tel)
	}
	return out
}
