// Package schemas loads the configured identity schemas once at start,
// validates traits against them with every violation and its JSON pointer,
// and reads the `ory.sh/kratos` extension to tell which traits are login
// identifiers, verifiable addresses and recovery addresses.
//
// Identity schemas are Kratos identity schemas: the JSON Schema describes the
// document {"traits": ...}, so Kratos schema files load unchanged.
package schemas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/identityd/identityd/model"
)

// Source is one configured schema (config key identity.schemas).
type Source struct {
	// ID names the schema; identities store it as their schema id.
	ID string `json:"id" yaml:"id"`
	// URL is file://, base64://, http(s):// or preset://NAME.
	URL string `json:"url" yaml:"url"`
}

// Options tune loading. The zero value gives the defaults: an HTTP timeout
// of 10s, a schema size cap of 1 MiB and a client like http.DefaultClient
// that refuses redirects to anything but http(s), so that a remote schema
// cannot point loading at the local file system.
type Options struct {
	// HTTPClient fetches http(s) schemas and their references.
	HTTPClient *http.Client
	// HTTPTimeout bounds each fetch, on top of NewRegistry's context.
	HTTPTimeout time.Duration
	// MaxBytes caps the size of each schema document, whatever its source.
	MaxBytes int64
}

const (
	defaultHTTPTimeout = 10 * time.Second
	defaultMaxBytes    = 1 << 20
	maxRedirects       = 10
)

// defaultHTTPClient is http.DefaultClient with a redirect policy that stays
// on http(s).
var defaultHTTPClient = &http.Client{
	CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
			return fmt.Errorf("refusing to follow a redirect to %s", req.URL.Redacted())
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return nil
	},
}

func (o Options) withDefaults() Options {
	if o.HTTPClient == nil {
		o.HTTPClient = defaultHTTPClient
	}
	if o.HTTPTimeout <= 0 {
		o.HTTPTimeout = defaultHTTPTimeout
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = defaultMaxBytes
	}
	return o
}

// Registry holds every configured identity schema, loaded and compiled once
// at start so that a broken schema stops the server instead of failing the
// first registration, and validation never compiles anything.
type Registry struct {
	defaultID string
	byID      map[string]*Schema
	all       []*Schema
}

// NewRegistry loads, checks and compiles every source. It fails on the first
// schema that cannot be used, naming its id and url, because serving with a
// schema missing would reject every identity that uses it.
func NewRegistry(ctx context.Context, defaultID string, sources []Source, opts Options) (*Registry, error) {
	if len(sources) == 0 {
		return nil, errors.New("no identity schemas are configured")
	}
	// Cheap configuration mistakes first, before anything is fetched.
	seen := make(map[string]bool, len(sources))
	for i, src := range sources {
		switch {
		case src.ID == "":
			return nil, fmt.Errorf("identity schema #%d (%s): id is empty", i+1, displayURL(src.URL))
		case seen[src.ID]:
			return nil, fmt.Errorf("identity schema %q is configured more than once", src.ID)
		case src.URL == "":
			return nil, fmt.Errorf("identity schema %q: url is empty", src.ID)
		}
		seen[src.ID] = true
	}
	if !seen[defaultID] {
		ids := make([]string, len(sources))
		for i, src := range sources {
			ids[i] = src.ID
		}
		return nil, fmt.Errorf("default identity schema %q is not among the configured schemas (%s)", defaultID, strings.Join(ids, ", "))
	}

	opts = opts.withDefaults()
	r := &Registry{defaultID: defaultID, byID: make(map[string]*Schema, len(sources))}
	for _, src := range sources {
		s, err := load(ctx, src, opts)
		if err != nil {
			return nil, fmt.Errorf("identity schema %q (%s): %w", src.ID, displayURL(src.URL), err)
		}
		r.byID[s.ID] = s
		r.all = append(r.all, s)
	}
	return r, nil
}

// Get returns the schema with the given id. An unknown id is the caller's
// mistake (a schemaId in the input), hence a SCHEMA_NOT_FOUND user error.
func (r *Registry) Get(id string) (*Schema, error) {
	if s, ok := r.byID[id]; ok {
		return s, nil
	}
	return nil, &model.Error{
		Code:    model.CodeSchemaNotFound,
		Message: fmt.Sprintf("identity schema %q is not configured", id),
		Path:    "/schemaId",
	}
}

// Resolve is Get with the default applied: an identity created without a
// schema id gets the default schema.
func (r *Registry) Resolve(id string) (*Schema, error) {
	if id == "" {
		return r.byID[r.defaultID], nil
	}
	return r.Get(id)
}

// DefaultID returns the id of the schema used when none is given.
func (r *Registry) DefaultID() string { return r.defaultID }

// All returns every schema in configuration order, for frontends that list
// them. The slice is a copy; the schemas are shared and must not be changed.
func (r *Registry) All() []*Schema { return slices.Clone(r.all) }

// Schema is one loaded and compiled identity schema.
type Schema struct {
	// ID is the configured id, stored with each identity.
	ID string
	// URL is where the schema was loaded from, as configured.
	URL string
	// Document is the schema JSON as loaded, compacted, served to frontends
	// that render forms from it.
	Document json.RawMessage

	compiled *jsonschema.Schema
}

// HasPasswordIdentifier reports whether any part of the schema marks a
// value as a password login identifier ("ory.sh/kratos": {"credentials":
// {"password": {"identifier": true}}}). Without one, an identity of this
// schema can never hold a password: Facts finds no identifier for it, and
// writing a password is refused. It looks at the schema alone, at every
// place Facts could find a mark in some traits (through $ref, allOf, anyOf,
// oneOf, if/then/else, dependencies, properties and items), so that a
// schema that cannot take passwords is known at start rather than at the
// first refused registration.
func (s *Schema) HasPasswordIdentifier() bool {
	seen := map[*jsonschema.Schema]bool{}
	var walk func(n *jsonschema.Schema) bool
	walk = func(n *jsonschema.Schema) bool {
		if n == nil || seen[n] {
			return false // seen also ends $ref cycles
		}
		seen[n] = true
		for _, ext := range n.Extensions {
			if e, ok := ext.(*extension); ok && e.Credentials.Password.Identifier {
				return true
			}
		}
		return slices.ContainsFunc(subschemas(n), walk)
	}
	return walk(s.compiled)
}

// subschemas lists the schemas n applies to its value or to parts of it,
// wherever Facts's walk (expand and visit) can reach: not under not,
// contains, propertyNames or the unevaluated keywords, whose marks Facts
// never reads.
func subschemas(n *jsonschema.Schema) []*jsonschema.Schema {
	out := []*jsonschema.Schema{n.Ref, n.RecursiveRef, n.If, n.Then, n.Else, n.Items2020}
	if n.DynamicRef != nil {
		out = append(out, n.DynamicRef.Ref)
	}
	out = append(out, n.AllOf...)
	out = append(out, n.AnyOf...)
	out = append(out, n.OneOf...)
	out = append(out, n.PrefixItems...)
	// Any order will do: the answer is whether some mark exists.
	out = slices.AppendSeq(out, maps.Values(n.Properties))
	out = slices.AppendSeq(out, maps.Values(n.PatternProperties))
	out = slices.AppendSeq(out, maps.Values(n.DependentSchemas))
	for _, dep := range n.Dependencies {
		if sub, ok := dep.(*jsonschema.Schema); ok {
			out = append(out, sub)
		}
	}
	for _, v := range []any{n.AdditionalProperties, n.AdditionalItems} {
		if sub, ok := v.(*jsonschema.Schema); ok {
			out = append(out, sub)
		}
	}
	switch items := n.Items.(type) {
	case *jsonschema.Schema:
		out = append(out, items)
	case []*jsonschema.Schema:
		out = append(out, items...)
	}
	return out
}

// load fetches, compiles and checks one source.
func load(ctx context.Context, src Source, opts Options) (*Schema, error) {
	f := &fetcher{ctx: ctx, opts: opts}
	data, loc, err := f.fetch(src.URL)
	if err != nil {
		return nil, err
	}
	doc, compact, err := parseJSON(data)
	if err != nil {
		return nil, err
	}

	// A preset is self-contained: nothing it says may make start-up reach
	// the network or the disk.
	var refs jsonschema.URLLoader = refLoader{f}
	if isPreset(src.URL) {
		refs = noRefLoader{}
	}
	compiled, err := compile(loc, doc, refs)
	if err != nil {
		return nil, err
	}
	if err := checkTraits(compiled); err != nil {
		return nil, err
	}
	return &Schema{ID: src.ID, URL: src.URL, Document: compact, compiled: compiled}, nil
}

// compile compiles doc, placed at loc so that its relative references
// resolve against where it came from.
func compile(loc string, doc any, refs jsonschema.URLLoader) (*jsonschema.Schema, error) {
	vocab, err := kratosVocabulary()
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	// Formats assert in every draft: an identity with an "email" that is not
	// one must not be stored.
	c.AssertFormat()
	// Custom vocabularies are off by default from draft 2019-09 on; the
	// extension must apply whatever draft a schema declares.
	c.AssertVocabs()
	c.RegisterFormat(telFormat)
	c.RegisterVocabulary(vocab)
	c.UseLoader(refs)
	if err := c.AddResource(loc, doc); err != nil {
		return nil, err
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return nil, compileError(err)
	}
	return sch, nil
}

// compileError makes the library's error about an invalid schema readable:
// which part of the schema is wrong and why, without the meta-schema's URL.
func compileError(err error) error {
	var sve *jsonschema.SchemaValidationError
	if !errors.As(err, &sve) {
		return err
	}
	var ve *jsonschema.ValidationError
	if !errors.As(sve.Err, &ve) {
		return err
	}
	_, frag, _ := strings.Cut(sve.URL, "#")
	var parts []string
	for _, v := range violations(ve) {
		parts = append(parts, fmt.Sprintf("at %s: %s", frag+v.Path, v.Message))
	}
	return fmt.Errorf("invalid schema: %s", strings.Join(parts, "; "))
}

// checkTraits makes sure the schema describes {"traits": {...}}: a schema
// written for the traits alone would otherwise accept anything, silently.
func checkTraits(root *jsonschema.Schema) error {
	for _, n := range expand([]*jsonschema.Schema{root}, nil, false) {
		traits, ok := n.Properties["traits"]
		if !ok {
			continue
		}
		for _, t := range expand([]*jsonschema.Schema{traits}, nil, false) {
			if t.Types != nil && slices.Equal(t.Types.ToStrings(), []string{"object"}) {
				return nil
			}
		}
		return errors.New(`"properties.traits" must declare "type": "object"`)
	}
	return errors.New(`the schema has no "properties.traits": an identity schema describes the document {"traits": {...}}`)
}

// displayURL shortens base64 URLs, which can be kilobytes long, for messages.
func displayURL(u string) string {
	const keep = 40
	if strings.HasPrefix(u, "base64://") && len(u) > keep {
		return u[:keep] + "…"
	}
	return u
}
