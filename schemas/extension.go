package schemas

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// extensionKeyword is the schema keyword Kratos reads; keeping its name and
// shape lets Kratos identity schemas load unchanged.
const extensionKeyword = "ory.sh/kratos"

// Credential types and address channels as the extension names them.
const (
	credentialPassword = "password"
	credentialWebAuthn = "webauthn"
	credentialPasskey  = "passkey"
	credentialTOTP     = "totp"
	credentialCode     = "code"

	viaEmail = "email"
	viaSMS   = "sms"
)

// extensionMetaSchema guards the keyword's value, so that a typo such as
// verification.via "pigeon" stops start-up instead of silently marking
// nothing.
//
//go:embed meta/ory.sh-kratos.schema.json
var extensionMetaSchema []byte

// extension is the compiled `ory.sh/kratos` keyword of one schema object.
// It implements jsonschema.SchemaExt.
type extension struct {
	Credentials struct {
		Password struct {
			Identifier bool `json:"identifier"`
		} `json:"password"`
		WebAuthn struct {
			Identifier bool `json:"identifier"`
		} `json:"webauthn"`
		Passkey struct {
			DisplayName bool `json:"display_name"`
		} `json:"passkey"`
		TOTP struct {
			AccountName bool `json:"account_name"`
		} `json:"totp"`
		Code struct {
			Identifier bool   `json:"identifier"`
			Via        string `json:"via"`
		} `json:"code"`
	} `json:"credentials"`
	Verification struct {
		Via string `json:"via"`
	} `json:"verification"`
	Recovery struct {
		Via string `json:"via"`
	} `json:"recovery"`

	// checks are the channel schemas a marked value must also satisfy:
	// Kratos refuses to send a code or a link to something that is not an
	// address on that channel, even when the trait declares no format.
	checks []*jsonschema.Schema
}

// Validate implements jsonschema.SchemaExt: the value must be deliverable on
// every channel it is marked for.
func (e *extension) Validate(ctx *jsonschema.ValidatorContext, v any) {
	if _, ok := v.(string); !ok {
		return
	}
	for _, check := range e.checks {
		if err := ctx.Validate(check, v, nil); err != nil {
			ctx.AddErr(err)
		}
	}
}

// vias lists the channels the value is marked for.
func (e *extension) vias() []string {
	var vias []string
	for _, via := range []string{e.Verification.Via, e.Recovery.Via} {
		if via != "" {
			vias = append(vias, via)
		}
	}
	if e.Credentials.Code.Identifier && e.Credentials.Code.Via != "" {
		vias = append(vias, e.Credentials.Code.Via)
	}
	return vias
}

// channelFormats maps a channel to the format its addresses have.
var channelFormats = map[string]string{viaEmail: "email", viaSMS: "tel"}

// noValidateFormats are the trait formats that turn the channel check off:
// Kratos's escape hatch for addresses it should take as they are. Kratos's
// own code registers "noformat" (identity/extension_verification.go) and
// tells schema authors to set it when a verification trait has no format;
// "no-validate" is the name this service documents. Either makes any value
// that can be stored an address; it is still normalised for its channel
// (see CanonicalIdentifier), which refuses what cannot be stored or seen.
var noValidateFormats = map[string]bool{"no-validate": true, "noformat": true}

// channelChecks compiles, once, the schema each channel's addresses must
// satisfy (the channel's format).
var channelChecks = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	checks := make(map[string]*jsonschema.Schema, len(channelFormats))
	for via, format := range channelFormats {
		doc := fmt.Appendf(nil, `{"format": %q}`, format)
		var err error
		if checks[via], err = compileEmbedded("urn:identityd:channel:"+via, doc); err != nil {
			return nil, err
		}
	}
	return checks, nil
})

// kratosVocabulary builds, once, the vocabulary registered with every
// compiler: the meta-schema that checks the keyword and the compile step
// that turns it into an *extension.
var kratosVocabulary = sync.OnceValues(func() (*jsonschema.Vocabulary, error) {
	meta, err := compileEmbedded("urn:identityd:meta:ory.sh-kratos", extensionMetaSchema)
	if err != nil {
		return nil, fmt.Errorf("meta-schema of %s: %w", extensionKeyword, err)
	}
	checks, err := channelChecks()
	if err != nil {
		return nil, err
	}
	return &jsonschema.Vocabulary{
		URL:    "urn:identityd:vocab:ory.sh-kratos",
		Schema: meta,
		Compile: func(_ *jsonschema.CompilerContext, obj map[string]any) (jsonschema.SchemaExt, error) {
			return compileExtension(obj, checks)
		},
	}, nil
})

// compileExtension decodes the keyword of one schema object, already checked
// by the meta-schema.
func compileExtension(obj map[string]any, checks map[string]*jsonschema.Schema) (jsonschema.SchemaExt, error) {
	raw, ok := obj[extensionKeyword]
	if !ok {
		return nil, nil
	}
	data, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	e := new(extension)
	if err := json.Unmarshal(data, e); err != nil {
		return nil, fmt.Errorf("%s: %w", extensionKeyword, err)
	}
	// The object's own format already reports a bad value once; checking
	// the same channel again would report it twice. A no-validate format
	// asks for no check at all.
	format, _ := obj["format"].(string)
	if noValidateFormats[format] {
		return e, nil
	}
	seen := map[string]bool{}
	for _, via := range e.vias() {
		if seen[via] || channelFormats[via] == format {
			continue
		}
		seen[via] = true
		e.checks = append(e.checks, checks[via])
	}
	return e, nil
}

// compileEmbedded compiles one of the package's own schemas.
func compileEmbedded(loc string, data []byte) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.RegisterFormat(telFormat)
	c.UseLoader(noRefLoader{})
	if err := c.AddResource(loc, doc); err != nil {
		return nil, err
	}
	return c.Compile(loc)
}
