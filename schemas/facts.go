package schemas

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/identityd/identityd/model"
)

// Facts is what the `ory.sh/kratos` extension says about one identity's
// traits: what it logs in with and where it can be reached.
type Facts struct {
	Identifiers         []Identifier
	VerifiableAddresses []Address
	RecoveryAddresses   []Address
}

// Identifier is one credential identifier taken from a trait.
type Identifier struct {
	// CredentialType is "password", "code", "webauthn", "passkey" or "totp".
	CredentialType string
	// Value is normalised (see CanonicalIdentifier), as it is stored and
	// looked up.
	Value string
	// Path is the trait's JSON pointer, e.g. "/traits/email".
	Path string
}

// Address is one verifiable or recovery address taken from a trait.
type Address struct {
	// Value is normalised (see CanonicalIdentifier).
	Value string
	// Via is the channel, "email" or "sms".
	Via string
	// Path is the trait's JSON pointer.
	Path string
}

// Facts reads the extension's marks for traits. Call it after Validate
// succeeded: it assumes the traits fit the schema and only fails when they
// are not a JSON object or when a marked value cannot be an identifier (see
// CanonicalIdentifier), with the errors Validate gives for it, so that no
// caller can store one that Validate would refuse. Identifiers are unique
// per credential type and addresses per channel, as one identity holds each
// only once.
func (s *Schema) Facts(traits json.RawMessage) (Facts, error) {
	doc, err := decodeDocument(traits)
	if err != nil {
		return Facts{}, err
	}
	c := s.collect(doc)
	if len(c.errs) > 0 {
		return Facts{}, sortViolations(c.errs)
	}
	return c.facts, nil
}

// collect walks doc, the decoded {"traits": ...}, for the extension's marks.
func (s *Schema) collect(doc map[string]any) *collector {
	c := &collector{seen: map[[3]string]bool{}, refused: map[string]bool{}, canon: map[canonKey]canonResult{}}
	c.visit([]*jsonschema.Schema{s.compiled}, doc, "")
	return c
}

// collector walks the compiled schema and the value together, as validation
// does, and gathers the marks of every schema that applies at each place.
type collector struct {
	facts Facts
	seen  map[[3]string]bool // kind, type or channel, value
	// errs holds one VALIDATION_FAILED per marked value that cannot be an
	// identifier; refused holds their pointers.
	errs    model.Errors
	refused map[string]bool
	canon   map[canonKey]canonResult
}

type canonKey struct {
	name        bool
	raw, format string
}

type canonResult struct {
	out string
	err error
}

func (c *collector) visit(schs []*jsonschema.Schema, v any, ptr string) {
	nodes := expand(schs, v, true)
	format := ""
	for _, n := range nodes {
		if n.Format != nil {
			format = n.Format.Name
			break
		}
	}
	for _, n := range nodes {
		for _, ext := range n.Extensions {
			if e, ok := ext.(*extension); ok {
				c.mark(e, v, ptr, format)
			}
		}
	}

	switch v := v.(type) {
	case map[string]any:
		for _, key := range slices.Sorted(maps.Keys(v)) {
			var child []*jsonschema.Schema
			for _, n := range nodes {
				child = appendPropertySchemas(child, n, key)
			}
			if len(child) > 0 {
				c.visit(child, v[key], ptr+"/"+escapeToken(key))
			}
		}
	case []any:
		for i, item := range v {
			var child []*jsonschema.Schema
			for _, n := range nodes {
				child = appendItemSchemas(child, n, i)
			}
			if len(child) > 0 {
				c.visit(child, item, ptr+"/"+strconv.Itoa(i))
			}
		}
	}
}

// mark records what e says about the value v at ptr.
func (c *collector) mark(e *extension, v any, ptr, format string) {
	var raw string
	switch v := v.(type) {
	case string:
		raw = v
	case json.Number:
		raw = v.String()
	default:
		return // only scalar traits can identify or reach anyone
	}
	creds := e.Credentials
	for _, id := range []struct {
		on   bool
		typ  string
		name bool // a name shown to the user, not typed to sign in
	}{
		{creds.Password.Identifier, credentialPassword, false},
		{creds.WebAuthn.Identifier, credentialWebAuthn, false},
		{creds.Passkey.DisplayName, credentialPasskey, true},
		{creds.TOTP.AccountName, credentialTOTP, true},
	} {
		if !id.on {
			continue
		}
		c.identifier(id.typ, c.normalize(id.name, raw, format, ptr), ptr)
	}
	// A code, a verification or a recovery message goes to an address: it is
	// normalised for its channel, whatever format the trait declares.
	if creds.Code.Identifier {
		c.identifier(credentialCode, c.normalize(false, raw, channelFormats[creds.Code.Via], ptr), ptr)
	}
	if via := e.Verification.Via; via != "" {
		if a, ok := c.address("verification", raw, via, ptr); ok {
			c.facts.VerifiableAddresses = append(c.facts.VerifiableAddresses, a)
		}
	}
	if via := e.Recovery.Via; via != "" {
		if a, ok := c.address("recovery", raw, via, ptr); ok {
			c.facts.RecoveryAddresses = append(c.facts.RecoveryAddresses, a)
		}
	}
}

// normalize returns raw's stored form (as a name when name is set, see
// canonicalName), or "" after recording why it cannot be one. A value
// refused for several marks is reported once: the first reason is the one a
// form shows.
func (c *collector) normalize(name bool, raw, format, ptr string) string {
	// One value usually carries several marks (identifier, verification,
	// recovery) of one format: normalise it once.
	key := canonKey{name, raw, format}
	res, ok := c.canon[key]
	if !ok {
		canon := CanonicalIdentifier
		if name {
			canon = canonicalName
		}
		res.out, res.err = canon(raw, format)
		c.canon[key] = res
	}
	out, err := res.out, res.err
	if err != nil {
		if !c.refused[ptr] {
			c.refused[ptr] = true
			c.errs = append(c.errs, &model.Error{Code: model.CodeValidationFailed, Path: ptr, Message: err.Error()})
		}
		return ""
	}
	return out
}

func (c *collector) identifier(typ, value, ptr string) {
	key := [3]string{"identifier", typ, value}
	if value == "" || c.seen[key] {
		return
	}
	c.seen[key] = true
	c.facts.Identifiers = append(c.facts.Identifiers, Identifier{CredentialType: typ, Value: value, Path: ptr})
}

func (c *collector) address(list, raw, via, ptr string) (Address, bool) {
	value := c.normalize(false, raw, channelFormats[via], ptr)
	key := [3]string{list, via, value}
	if value == "" || c.seen[key] {
		return Address{}, false
	}
	c.seen[key] = true
	return Address{Value: value, Via: via, Path: ptr}, true
}

// expand returns schs and every schema that applies in place with them, at
// the same value: $ref, allOf and, when the value is known, the branches of
// anyOf, oneOf, if/then/else and dependentSchemas that the value takes.
// Marks inside any of them count, as they do in Kratos.
func expand(schs []*jsonschema.Schema, v any, known bool) []*jsonschema.Schema {
	var out []*jsonschema.Schema
	seen := map[*jsonschema.Schema]bool{}
	var add func(s *jsonschema.Schema)
	add = func(s *jsonschema.Schema) {
		if s == nil || seen[s] {
			return // seen also ends $ref cycles
		}
		seen[s] = true
		out = append(out, s)
		add(s.Ref)
		add(s.RecursiveRef)
		if s.DynamicRef != nil {
			add(s.DynamicRef.Ref)
		}
		for _, sub := range s.AllOf {
			add(sub)
		}
		if !known {
			return
		}
		for _, sub := range slices.Concat(s.AnyOf, s.OneOf) {
			if sub.Validate(v) == nil {
				add(sub)
			}
		}
		if s.If != nil {
			if s.If.Validate(v) == nil {
				add(s.If)
				add(s.Then)
			} else {
				add(s.Else)
			}
		}
		if obj, ok := v.(map[string]any); ok {
			for _, name := range slices.Sorted(maps.Keys(s.DependentSchemas)) {
				if _, ok := obj[name]; ok {
					add(s.DependentSchemas[name])
				}
			}
			for _, name := range slices.Sorted(maps.Keys(s.Dependencies)) {
				if dep, ok := s.Dependencies[name].(*jsonschema.Schema); ok {
					if _, ok := obj[name]; ok {
						add(dep)
					}
				}
			}
		}
	}
	for _, s := range schs {
		add(s)
	}
	return out
}

// appendPropertySchemas appends the schemas n applies to its property key.
func appendPropertySchemas(out []*jsonschema.Schema, n *jsonschema.Schema, key string) []*jsonschema.Schema {
	matched := false
	if s, ok := n.Properties[key]; ok {
		out = append(out, s)
		matched = true
	}
	if len(n.PatternProperties) > 0 {
		// Sorted so that facts come out in the same order every time.
		patterns := slices.SortedFunc(maps.Keys(n.PatternProperties), func(a, b jsonschema.Regexp) int {
			return strings.Compare(a.String(), b.String())
		})
		for _, re := range patterns {
			if re.MatchString(key) {
				out = append(out, n.PatternProperties[re])
				matched = true
			}
		}
	}
	if s, ok := n.AdditionalProperties.(*jsonschema.Schema); ok && !matched {
		out = append(out, s)
	}
	return out
}

// appendItemSchemas appends the schemas n applies to item i, in every
// draft's spelling.
func appendItemSchemas(out []*jsonschema.Schema, n *jsonschema.Schema, i int) []*jsonschema.Schema {
	switch items := n.Items.(type) {
	case *jsonschema.Schema: // draft-07 and before: one schema for all
		out = append(out, items)
	case []*jsonschema.Schema: // draft-07 and before: a tuple
		if i < len(items) {
			out = append(out, items[i])
		} else if s, ok := n.AdditionalItems.(*jsonschema.Schema); ok {
			out = append(out, s)
		}
	}
	if i < len(n.PrefixItems) {
		out = append(out, n.PrefixItems[i])
	} else if n.Items2020 != nil {
		out = append(out, n.Items2020)
	}
	return out
}
