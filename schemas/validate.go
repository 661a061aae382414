package schemas

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/identityd/identityd/model"
)

// printer renders the library's messages for kinds without a message of
// our own.
var printer = message.NewPrinter(language.English)

// Validate checks traits against the schema. It returns nil, or model.Errors
// with one VALIDATION_FAILED per violation, each pointing at the offending
// trait (/traits/...), sorted by path, so that a form can mark every bad
// field at once.
//
// Beyond the schema, every value the extension marks as an identifier or an
// address must be one (see CanonicalIdentifier: no control or invisible
// characters, one script, …), and no string or property name anywhere may
// hold U+0000, which no database text column or JSONB value takes. Every
// write of traits comes through here, so none stores what login could
// confuse or the database refuse.
func (s *Schema) Validate(traits json.RawMessage) error {
	doc, err := decodeDocument(traits)
	if err != nil {
		return err
	}
	var out model.Errors
	if err := s.compiled.Validate(doc); err != nil {
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return fmt.Errorf("validating traits against schema %q: %w", s.ID, err)
		}
		out = violations(ve)
	}
	c := s.collect(doc)
	out = append(out, c.errs...)
	// JSON can spell U+0000 only as this escape: without one in the bytes,
	// no string or name holds it, and the walk is skipped.
	if bytes.Contains(traits, []byte(`\u0000`)) {
		out = appendNULs(out, doc, "", c.refused)
	}
	if len(out) == 0 {
		return nil
	}
	return sortViolations(out)
}

// appendNULs reports every string and property name under v that holds
// U+0000, except at pointers already refused as identifiers (which say so).
func appendNULs(out model.Errors, v any, ptr string, skip map[string]bool) model.Errors {
	switch v := v.(type) {
	case string:
		if strings.IndexByte(v, 0) >= 0 && !skip[ptr] {
			out = append(out, &model.Error{Code: model.CodeValidationFailed, Path: ptr, Message: "must not contain the character U+0000"})
		}
	case map[string]any:
		for key, val := range v { // the caller sorts the errors
			at := ptr + "/" + escapeToken(key)
			if strings.IndexByte(key, 0) >= 0 {
				out = append(out, &model.Error{Code: model.CodeValidationFailed, Path: at, Message: "a property name must not contain the character U+0000"})
			}
			out = appendNULs(out, val, at, skip)
		}
	case []any:
		for i, item := range v {
			out = appendNULs(out, item, ptr+"/"+strconv.Itoa(i), skip)
		}
	}
	return out
}

// decodeDocument decodes traits into the document the schema describes,
// {"traits": ...}. Numbers stay json.Number, so that 1.5 is no integer and
// 9007199254740993 is not rounded to a float before being compared.
func decodeDocument(traits json.RawMessage) (map[string]any, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(traits))
	if err != nil {
		return nil, traitsError("traits are not valid JSON")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, traitsError(fmt.Sprintf("traits must be a JSON object, not %s", jsonTypeName(v)))
	}
	return map[string]any{"traits": obj}, nil
}

func traitsError(msg string) model.Errors {
	return model.Errors{{Code: model.CodeValidationFailed, Message: msg, Path: "/traits"}}
}

func jsonTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	default:
		return "an object"
	}
}

// violations flattens the library's error tree into one error per
// violation. Only the leaves say what is wrong; the nodes above them
// ("doesn't validate with ...", allOf, $ref) only say where they came from.
func violations(root *jsonschema.ValidationError) model.Errors {
	var out model.Errors
	add := func(path, msg string) {
		out = append(out, &model.Error{Code: model.CodeValidationFailed, Message: msg, Path: path})
	}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		at := pointer(e.InstanceLocation)
		// A missing or forbidden property is the property's problem, not the
		// object's: point at the property so a form can mark the field.
		switch k := e.ErrorKind.(type) {
		case *kind.Required:
			for _, p := range k.Missing {
				add(at+"/"+escapeToken(p), fmt.Sprintf("property %q is missing", p))
			}
		case *kind.DependentRequired:
			for _, p := range k.Missing {
				add(at+"/"+escapeToken(p), fmt.Sprintf("property %q is missing, as %q is present", p, k.Prop))
			}
		case *kind.Dependency:
			for _, p := range k.Missing {
				add(at+"/"+escapeToken(p), fmt.Sprintf("property %q is missing, as %q is present", p, k.Prop))
			}
		case *kind.AdditionalProperties:
			for _, p := range k.Properties {
				add(at+"/"+escapeToken(p), fmt.Sprintf("property %q is not allowed", p))
			}
		case *kind.FalseSchema:
			add(at, "no value is allowed here")
		// The library prints numbers through float64, which would show
		// 9007199254740993 as 9.007199254740992e15: say them exactly.
		case *kind.Maximum:
			add(at, fmt.Sprintf("must be at most %s (got %s)", exact(k.Want), exact(k.Got)))
		case *kind.Minimum:
			add(at, fmt.Sprintf("must be at least %s (got %s)", exact(k.Want), exact(k.Got)))
		case *kind.ExclusiveMaximum:
			add(at, fmt.Sprintf("must be less than %s (got %s)", exact(k.Want), exact(k.Got)))
		case *kind.ExclusiveMinimum:
			add(at, fmt.Sprintf("must be greater than %s (got %s)", exact(k.Want), exact(k.Got)))
		case *kind.MultipleOf:
			add(at, fmt.Sprintf("must be a multiple of %s (got %s)", exact(k.Want), exact(k.Got)))
		// Lengths are what forms show most; say them in words.
		case *kind.MinLength:
			add(at, fmt.Sprintf("must be at least %s long (got %d)", characters(k.Want), k.Got))
		case *kind.MaxLength:
			add(at, fmt.Sprintf("must be at most %s long (got %d)", characters(k.Want), k.Got))
		default:
			add(at, e.ErrorKind.LocalizedString(printer))
		}
	}
	walk(root)
	return sortViolations(out)
}

// sortViolations sorts errors by path and message and drops repeats:
// branches of anyOf/oneOf can fail for the same reason at the same place.
func sortViolations(out model.Errors) model.Errors {
	slices.SortFunc(out, func(a, b *model.Error) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(a.Message, b.Message))
	})
	return slices.CompactFunc(out, func(a, b *model.Error) bool {
		return a.Path == b.Path && a.Message == b.Message
	})
}

func characters(n int) string {
	if n == 1 {
		return "1 character"
	}
	return fmt.Sprintf("%d characters", n)
}

// exact renders a number from the schema or the traits without rounding:
// as an integer, as a finite decimal when it has one, else as a fraction.
func exact(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	// A fraction has a finite decimal form when its denominator has no
	// prime factors but 2 and 5; the larger exponent is the digit count.
	d := new(big.Int).Set(r.Denom())
	digits := 0
	for _, p := range []int64{2, 5} {
		n, rem, prime := 0, new(big.Int), big.NewInt(p)
		for {
			q, m := new(big.Int).QuoRem(d, prime, rem)
			if m.Sign() != 0 {
				break
			}
			d, n = q, n+1
		}
		digits = max(digits, n)
	}
	if d.Cmp(big.NewInt(1)) == 0 {
		return r.FloatString(digits)
	}
	return r.RatString()
}

// pointer renders a location as an RFC 6901 JSON pointer.
func pointer(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		sb.WriteString(escapeToken(t))
	}
	return sb.String()
}

var tokenEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func escapeToken(t string) string { return tokenEscaper.Replace(t) }
