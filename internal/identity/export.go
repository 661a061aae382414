package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/internal/mfa"
	"github.com/identityd/identityd/model"
)

// Identities as Kratos's admin API writes them (GET /admin/identities/{id}
// with include_credential, `kratos list identities`): what `identityd
// identities export` writes and `identities import` reads, so a Kratos
// export loads unchanged and an export of ours loads into Kratos.

// KratosIdentity is one identity in Kratos's JSON layout.
type KratosIdentity struct {
	ID       uuid.UUID `json:"id"`
	SchemaID string    `json:"schema_id"`
	// State is "active" or "inactive".
	State          string          `json:"state"`
	StateChangedAt *time.Time      `json:"state_changed_at,omitempty"`
	Traits         json.RawMessage `json:"traits"`
	ExternalID     *string         `json:"external_id,omitempty"`
	// Credentials are keyed by type ("password", "oidc", "totp",
	// "lookup_secret", …); Config is set only in an export with credentials.
	Credentials         map[string]*KratosCredential `json:"credentials,omitempty"`
	VerifiableAddresses []KratosVerifiableAddress    `json:"verifiable_addresses"`
	RecoveryAddresses   []KratosRecoveryAddress      `json:"recovery_addresses"`
	MetadataPublic      json.RawMessage              `json:"metadata_public"`
	MetadataAdmin       json.RawMessage              `json:"metadata_admin"`
	CreatedAt           time.Time                    `json:"created_at"`
	UpdatedAt           time.Time                    `json:"updated_at"`
}

// KratosCredential is one credential in Kratos's layout.
type KratosCredential struct {
	Type        string          `json:"type"`
	Identifiers []string        `json:"identifiers"`
	Config      json.RawMessage `json:"config,omitempty"`
	Version     int             `json:"version"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

// KratosVerifiableAddress is a verifiable address in Kratos's layout.
type KratosVerifiableAddress struct {
	ID         uuid.UUID  `json:"id"`
	Value      string     `json:"value"`
	Verified   bool       `json:"verified"`
	Via        string     `json:"via"`
	Status     string     `json:"status"`
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
}

// KratosRecoveryAddress is a recovery address in Kratos's layout.
type KratosRecoveryAddress struct {
	ID        uuid.UUID `json:"id"`
	Value     string    `json:"value"`
	Via       string    `json:"via"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// kratosInput is what an import reads of a Kratos identity. Everything else
// (id, timestamps, schema_url, organization_id, the addresses' ids) is
// ignored, as Kratos's own import ignores it: the identity gets a new id.
type kratosInput struct {
	SchemaID            *string                       `json:"schema_id"`
	State               *string                       `json:"state"`
	Traits              json.RawMessage               `json:"traits"`
	ExternalID          *string                       `json:"external_id"`
	Credentials         map[string]json.RawMessage    `json:"credentials"`
	VerifiableAddresses []kratosVerifiableAddressIn   `json:"verifiable_addresses"`
	RecoveryAddresses   []*model.RecoveryAddressInput `json:"recovery_addresses"`
	MetadataPublic      json.RawMessage               `json:"metadata_public"`
	MetadataAdmin       json.RawMessage               `json:"metadata_admin"`
}

type kratosVerifiableAddressIn struct {
	Value      string     `json:"value"`
	Via        string     `json:"via"`
	Verified   *bool      `json:"verified"`
	VerifiedAt *time.Time `json:"verified_at"`
	Status     *string    `json:"status"`
}

// The credential configs an import reads: the admin import's
// (`credentials.X.config`) and, for lookup secrets, the stored layout that an
// export with credentials shows (`recovery_codes`).
type (
	kratosPasswordConfig struct {
		HashedPassword   string `json:"hashed_password"`
		Password         string `json:"password"`
		UseMigrationHook bool   `json:"use_password_migration_hook"`
	}
	kratosOIDCConfig struct {
		Providers []struct {
			Provider     string `json:"provider"`
			Subject      string `json:"subject"`
			Organization string `json:"organization"`
		} `json:"providers"`
	}
	kratosTOTPConfig struct {
		TOTPURL string `json:"totp_url"`
	}
	kratosLookupConfig struct {
		Codes         []kratosLookupCode `json:"codes"`
		RecoveryCodes []kratosLookupCode `json:"recovery_codes"`
	}
	kratosLookupCode struct {
		Code   string     `json:"code"`
		UsedAt *time.Time `json:"used_at"`
	}
)

// KratosImport is one Kratos identity read for import: the input for
// Import, notes on what of it is not imported, and how the input's paths
// map back to the document's.
type KratosImport struct {
	Input *model.CreateIdentityInput
	// Notes say what the document holds that is not imported (a credential
	// type this server does not import, a password migration hook, used
	// lookup secrets), one short phrase each, the same for every identity
	// so that they can be counted.
	Notes []string
	// lookupIndex maps the index of a lookup secret in the input to its
	// index in the document (used codes are left out).
	lookupIndex []int
}

// ParseKratosIdentity reads one identity as Kratos writes it. A document
// that is not an identity (not a JSON object, a field of the wrong type, an
// unknown state, an organization that is not a UUID) is refused with a
// VALIDATION_FAILED error at its path in the document; everything else is
// left to Import.
func ParseKratosIdentity(doc []byte) (*KratosImport, error) {
	doc = bytes.TrimSpace(doc)
	if len(doc) == 0 || doc[0] != '{' {
		return nil, &model.Error{Code: model.CodeValidationFailed, Message: "not a JSON object"}
	}
	var in kratosInput
	if err := json.Unmarshal(doc, &in); err != nil {
		return nil, decodeError(err, "")
	}
	out := &KratosImport{Input: &model.CreateIdentityInput{
		SchemaID:       in.SchemaID,
		ExternalID:     in.ExternalID,
		MetadataPublic: kratosJSON(in.MetadataPublic),
		MetadataAdmin:  kratosJSON(in.MetadataAdmin),
	}}
	if t := kratosJSON(in.Traits); t != nil {
		out.Input.Traits = t
	}
	if in.State != nil {
		switch *in.State {
		case model.StateActiveJSON:
			s := model.IdentityStateActive
			out.Input.State = &s
		case model.StateInactiveJSON:
			s := model.IdentityStateInactive
			out.Input.State = &s
		default:
			return nil, &model.Error{Code: model.CodeValidationFailed, Path: "/state",
				Message: fmt.Sprintf("state %q is neither active nor inactive", *in.State)}
		}
	}
	for _, a := range in.VerifiableAddresses {
		out.Input.VerifiableAddresses = append(out.Input.VerifiableAddresses, &model.VerifiableAddressInput{
			Value: a.Value, Via: a.Via, Verified: a.Verified, VerifiedAt: a.VerifiedAt, Status: a.Status})
	}
	for _, a := range in.RecoveryAddresses {
		if a != nil {
			out.Input.RecoveryAddresses = append(out.Input.RecoveryAddresses, a)
		}
	}
	if err := out.credentials(in.Credentials); err != nil {
		return nil, err
	}
	return out, nil
}

// credentials reads the credentials an import takes: password (a hash, or
// a cleartext password hashed here), OIDC links, a TOTP key and unused
// lookup secrets. Configs without a secret (an export made without
// credentials) import nothing; other types are noted and left out.
func (k *KratosImport) credentials(creds map[string]json.RawMessage) error {
	var in model.CredentialsInput
	given := false
	for _, typ := range slices.Sorted(maps.Keys(creds)) {
		raw := creds[typ]
		var c struct {
			Config json.RawMessage `json:"config"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return decodeError(err, "/credentials/"+typ)
		}
		at := "/credentials/" + typ + "/config"
		config := kratosJSON(c.Config)
		switch typ {
		case db.CredentialPassword:
			var p kratosPasswordConfig
			if config != nil {
				if err := json.Unmarshal(config, &p); err != nil {
					return decodeError(err, at)
				}
			}
			switch {
			case p.HashedPassword != "":
				in.Password = &model.PasswordCredentialInput{HashedPassword: &p.HashedPassword}
			case p.Password != "":
				in.Password = &model.PasswordCredentialInput{Password: &p.Password}
			case p.UseMigrationHook:
				k.Notes = append(k.Notes, "password: use_password_migration_hook is not supported (imported without a password)")
			default:
				k.Notes = append(k.Notes, "password: no hash in the document (imported without a password)")
			}
		case db.CredentialOIDC:
			var o kratosOIDCConfig
			if config != nil {
				if err := json.Unmarshal(config, &o); err != nil {
					return decodeError(err, at)
				}
			}
			if len(o.Providers) == 0 {
				if config == nil {
					k.Notes = append(k.Notes, "oidc: no providers in the document (imported without OIDC links)")
				}
				continue
			}
			oidc := &model.OIDCCredentialInput{Providers: make([]*model.OIDCProviderInput, len(o.Providers))}
			for i, p := range o.Providers {
				link := &model.OIDCProviderInput{Provider: p.Provider, Subject: p.Subject}
				if p.Organization != "" {
					org, err := uuid.Parse(p.Organization)
					if err != nil {
						return &model.Error{Code: model.CodeValidationFailed, Path: fmt.Sprintf("%s/providers/%d/organization", at, i),
							Message: "organization is not a UUID"}
					}
					link.Organization = &org
				}
				oidc.Providers[i] = link
			}
			in.Oidc = oidc
		case db.CredentialTOTP:
			var t kratosTOTPConfig
			if config != nil {
				if err := json.Unmarshal(config, &t); err != nil {
					return decodeError(err, at)
				}
			}
			if t.TOTPURL == "" {
				k.Notes = append(k.Notes, "totp: no totp_url in the document (imported without TOTP)")
				continue
			}
			in.Totp = &model.TotpCredentialInput{SecretURL: &t.TOTPURL}
		case db.CredentialLookupSecret:
			var l kratosLookupConfig
			if config != nil {
				if err := json.Unmarshal(config, &l); err != nil {
					return decodeError(err, at)
				}
			}
			codes := l.Codes
			if codes == nil {
				codes = l.RecoveryCodes
			}
			var unused []string
			for i, c := range codes {
				if c.UsedAt == nil || c.UsedAt.IsZero() {
					unused = append(unused, c.Code)
					k.lookupIndex = append(k.lookupIndex, i)
				}
			}
			switch {
			case len(unused) > 0:
				in.LookupSecret = &model.LookupSecretCredentialInput{Codes: unused}
				if len(unused) < len(codes) {
					k.Notes = append(k.Notes, "lookup_secret: used codes are left out")
				}
			case len(codes) > 0:
				k.Notes = append(k.Notes, "lookup_secret: every code was used (imported without lookup secrets)")
			default:
				k.Notes = append(k.Notes, "lookup_secret: no codes in the document (imported without lookup secrets)")
			}
		default:
			k.Notes = append(k.Notes, typ+": credentials of this type are not imported")
		}
		given = true
	}
	if given && (in.Password != nil || in.Oidc != nil || in.Totp != nil || in.LookupSecret != nil) {
		k.Input.Credentials = &in
	}
	return nil
}

// Path turns a path into the import's input (what Import's errors carry)
// into the path of the same field in the Kratos document.
func (k *KratosImport) Path(p string) string {
	rules := []struct{ from, to string }{
		{"/schemaId", "/schema_id"},
		{"/externalId", "/external_id"},
		{"/metadataPublic", "/metadata_public"},
		{"/metadataAdmin", "/metadata_admin"},
		{"/verifiableAddresses", "/verifiable_addresses"},
		{"/recoveryAddresses", "/recovery_addresses"},
		{"/credentials/password/hashedPassword", "/credentials/password/config/hashed_password"},
		{"/credentials/password/password", "/credentials/password/config/password"},
		{"/credentials/password", "/credentials/password/config"},
		{"/credentials/oidc/providers", "/credentials/oidc/config/providers"},
		{"/credentials/oidc", "/credentials/oidc/config"},
		{"/credentials/totp/secretUrl", "/credentials/totp/config/totp_url"},
		{"/credentials/totp", "/credentials/totp/config"},
		{"/credentials/lookupSecret/codes", "/credentials/lookup_secret/config/codes"},
		{"/credentials/lookupSecret", "/credentials/lookup_secret/config"},
	}
	for _, r := range rules {
		rest, ok := strings.CutPrefix(p, r.from)
		if !ok || (rest != "" && rest[0] != '/') {
			continue
		}
		if r.from == "/credentials/lookupSecret/codes" && len(rest) > 1 {
			// The document's index: used codes were left out.
			seg, tail, _ := strings.Cut(rest[1:], "/")
			if i, err := strconv.Atoi(seg); err == nil && i >= 0 && i < len(k.lookupIndex) {
				rest = "/" + strconv.Itoa(k.lookupIndex[i])
				if tail != "" {
					rest += "/" + tail
				}
			}
		}
		return r.to + rest
	}
	return p
}

// decodeError turns a JSON decoding error into VALIDATION_FAILED at the
// path of the field (under prefix).
func decodeError(err error, prefix string) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		path := prefix
		if te.Field != "" {
			path += "/" + strings.ReplaceAll(te.Field, ".", "/")
		}
		return &model.Error{Code: model.CodeValidationFailed, Path: path,
			Message: fmt.Sprintf("a JSON %s is not allowed here (want %s)", te.Value, jsonKind(te.Type.String()))}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &model.Error{Code: model.CodeValidationFailed, Path: prefix, Message: fmt.Sprintf("not valid JSON: %v (at byte %d)", se, se.Offset)}
	}
	return &model.Error{Code: model.CodeValidationFailed, Path: prefix, Message: err.Error()}
}

// jsonKind names a Go type by the JSON that fills it.
func jsonKind(goType string) string {
	switch {
	case goType == "string", strings.HasSuffix(goType, "*string"), strings.HasSuffix(goType, "Time"):
		return "a string"
	case goType == "bool", strings.HasSuffix(goType, "*bool"):
		return "a boolean"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "int"):
		return "a number"
	default:
		return "an object"
	}
}

// kratosJSON is j, or nil when j is absent or JSON null.
func kratosJSON(j json.RawMessage) model.JSON {
	if model.JSON(j).IsNull() {
		return nil
	}
	return model.JSON(j)
}

// ImportBulk is Import for bulk loads (the identities import command):
// each item is checked and prepared by the same code as Import, and the
// batch is stored with db.CopyIdentities, which on PostgreSQL sends it with
// COPY and otherwise (or when an item collides) is CreateIdentities. Ids are
// drawn as the items are prepared, so second-factor secrets are sealed and
// keyed for the id the identity keeps; ids are drawn in input order, so
// identities list in the order of the input within a batch (interleaved
// between batches imported at once).
func (s *Service) ImportBulk(ctx context.Context, ins []*model.CreateIdentityInput) ([]ImportResult, error) {
	if len(ins) > MaxImport {
		return nil, model.Errorf(model.CodeBadUserInput, "at most %d identities can be imported per call, got %d", MaxImport, len(ins))
	}
	results, writes := s.prepareImport(ctx, ins, false)
	return s.writeImport(ctx, ins, results, writes, s.store.CopyIdentities)
}

// prepareImport prepares every item of an import at once, a few at a time
// (hashing cleartext passwords is the slow part: the hasher bounds how many
// run at once); dryRun swaps cleartext passwords for a stand-in hash.
func (s *Service) prepareImport(ctx context.Context, ins []*model.CreateIdentityInput, dryRun bool) ([]ImportResult, []*db.IdentityWrite) {
	results := make([]ImportResult, len(ins))
	writes := make([]*db.IdentityWrite, len(ins))
	// Ids are drawn in input order, before anything is prepared: they sort
	// by creation, so listings keep the import's order, and second factors
	// are sealed and hashed for the id the identity gets.
	ids := make([]uuid.UUID, len(ins))
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				in := ins[i]
				if in == nil {
					results[i].Err = &model.Error{Code: model.CodeValidationFailed,
						Message: "the item is null: give an identity (an object with at least the fields the schema requires)"}
					continue
				}
				if dryRun {
					in = dryRunInput(in)
				}
				writes[i], results[i].Err = s.prepareCreateWithID(ctx, in, false, ids[i])
			}
		})
	}
	for i := range ins {
		next <- i
	}
	close(next)
	wg.Wait()
	return results, writes
}

// ImportDryRun checks ins as Import would and writes nothing: every item is
// validated and prepared as for Import, and the batch is written in a
// transaction that is rolled back, so identifiers or addresses taken by
// stored identities, or by an earlier item of the same batch, fail their
// item as they would in Import. Hashing cleartext passwords is skipped (the
// result is thrown away): the policy is not applied to imports either.
func (s *Service) ImportDryRun(ctx context.Context, ins []*model.CreateIdentityInput) ([]ImportResult, error) {
	if len(ins) > MaxImport {
		return nil, model.Errorf(model.CodeBadUserInput, "at most %d identities can be imported per call, got %d", MaxImport, len(ins))
	}
	results, writes := s.prepareImport(ctx, ins, true)
	var batch []*db.IdentityWrite
	var at []int
	for i, w := range writes {
		if results[i].Err == nil {
			batch = append(batch, w)
			at = append(at, i)
		}
	}
	created, err := s.store.TryCreateIdentities(ctx, batch)
	if err != nil {
		return nil, err
	}
	for k, c := range created {
		results[at[k]] = ImportResult{Identity: c.Identity, Err: c.Err}
	}
	return results, nil
}

// dryRunInput is in with a cleartext password replaced by a stand-in hash
// of a recognised format, so a dry run does not spend seconds of CPU on
// hashes it throws away; no verification is sent either way.
func dryRunInput(in *model.CreateIdentityInput) *model.CreateIdentityInput {
	c := *in
	c.SendVerification = nil
	if in.Credentials != nil && in.Credentials.Password != nil && in.Credentials.Password.Password != nil &&
		in.Credentials.Password.HashedPassword == nil {
		creds := *in.Credentials
		hash := dryRunHash()
		creds.Password = &model.PasswordCredentialInput{HashedPassword: &hash}
		c.Credentials = &creds
	}
	return &c
}

// dryRunHash is a bcrypt hash of the lowest cost, made once, that stands in
// for a cleartext password in a dry run.
var dryRunHash = sync.OnceValue(func() string {
	h, err := bcrypt.GenerateFromPassword([]byte("dry run"), bcrypt.MinCost)
	if err != nil {
		return "" // refused as malformed: the item fails, nothing is written
	}
	return string(h)
})

// ExportFilter narrows an export; zero fields do not filter.
type ExportFilter struct {
	State    *model.IdentityState
	SchemaID *string
}

// ExportPage is how many identities an export reads at a time.
const ExportPage = 1000

// Export writes every identity f matches to emit, in creation order, one
// page in memory at a time, each in Kratos's layout with its addresses and
// credentials. Without withCredentials a credential shows its type and
// identifiers only (as Kratos lists identities without include_credential);
// with it, each also carries its config as Kratos's import takes it: the
// password hash, the OIDC links, and the TOTP key's otpauth URL, decrypted
// (it is stored encrypted). Lookup secrets are never exported: only their
// keyed hashes are stored. omitted lists, per identity, what of it the
// document could not carry ("lookup_secret", or "totp" when the key does not
// decrypt with the configured secrets), for the caller to report.
func (s *Service) Export(ctx context.Context, f ExportFilter, withCredentials bool,
	emit func(ident *KratosIdentity, omitted []string) error) error {
	type page struct {
		rows []db.ExportedIdentity
		err  error
	}
	filter := db.IdentityFilter{State: f.State, SchemaID: f.SchemaID}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The next page is read while this one is written out.
	pages := make(chan page, 1)
	go func() {
		defer close(pages)
		after := uuid.Nil
		for {
			rows, next, err := s.store.ExportIdentities(ctx, filter, after, ExportPage, withCredentials)
			select {
			case pages <- page{rows, err}:
			case <-ctx.Done():
				return
			}
			if err != nil || next == uuid.Nil {
				return
			}
			after = next
		}
	}()
	for p := range pages {
		if p.err != nil {
			return p.err
		}
		for _, x := range p.rows {
			k, omitted := s.kratosIdentity(x, withCredentials)
			if err := emit(k, omitted); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

// kratosIdentity lays x out as Kratos writes it.
func (s *Service) kratosIdentity(x db.ExportedIdentity, withCredentials bool) (*KratosIdentity, []string) {
	i := x.Identity
	out := &KratosIdentity{
		ID:                  i.ID,
		SchemaID:            i.SchemaID,
		State:               model.StateActiveJSON,
		StateChangedAt:      i.StateChangedAt,
		Traits:              json.RawMessage(i.Traits),
		ExternalID:          i.ExternalID,
		MetadataPublic:      json.RawMessage(i.MetadataPublic),
		MetadataAdmin:       json.RawMessage(i.MetadataAdmin),
		CreatedAt:           i.CreatedAt,
		UpdatedAt:           i.UpdatedAt,
		VerifiableAddresses: make([]KratosVerifiableAddress, len(i.VerifiableAddresses)),
		RecoveryAddresses:   make([]KratosRecoveryAddress, len(i.RecoveryAddresses)),
	}
	if i.State == model.IdentityStateInactive {
		out.State = model.StateInactiveJSON
	}
	if len(out.Traits) == 0 {
		out.Traits = json.RawMessage("{}")
	}
	for n, a := range i.VerifiableAddresses {
		out.VerifiableAddresses[n] = KratosVerifiableAddress{ID: a.ID, Value: a.Value, Verified: a.Verified, Via: a.Via,
			Status: a.Status, VerifiedAt: a.VerifiedAt, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
	}
	for n, a := range i.RecoveryAddresses {
		out.RecoveryAddresses[n] = KratosRecoveryAddress{ID: a.ID, Value: a.Value, Via: a.Via, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
	}
	var omitted []string
	if len(x.Credentials) > 0 {
		out.Credentials = make(map[string]*KratosCredential, len(x.Credentials))
	}
	for _, c := range x.Credentials {
		kc := &KratosCredential{Type: c.Type, Identifiers: c.Identifiers, Version: c.Version, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
		out.Credentials[c.Type] = kc
		if !withCredentials {
			continue
		}
		config, ok := s.kratosConfig(i.ID, c)
		if !ok {
			omitted = append(omitted, c.Type)
			continue
		}
		kc.Config = config
	}
	return out, omitted
}

// kratosConfig is a stored credential's config as Kratos's import takes
// it; false when it cannot be exported.
func (s *Service) kratosConfig(id uuid.UUID, c db.ExportedCredential) (json.RawMessage, bool) {
	switch c.Type {
	case db.CredentialPassword:
		var p struct {
			HashedPassword string `json:"hashed_password"`
		}
		if json.Unmarshal(c.Config, &p) != nil || p.HashedPassword == "" {
			return nil, false
		}
		return plainJSON(p), true
	case db.CredentialOIDC:
		// Kratos's layout already: {"providers": [{"provider", "subject",
		// "organization"}]}; copied so no other stored key leaves.
		var o struct {
			Providers []struct {
				Provider     string     `json:"provider"`
				Subject      string     `json:"subject"`
				Organization *uuid.UUID `json:"organization,omitempty"`
			} `json:"providers"`
		}
		if json.Unmarshal(c.Config, &o) != nil {
			return nil, false
		}
		return plainJSON(o), true
	case db.CredentialTOTP:
		var t mfa.TOTPConfig
		if s.secondFactors == nil || json.Unmarshal(c.Config, &t) != nil {
			return nil, false
		}
		url, _, err := s.secondFactors.OpenTOTP(id, t.SealedURL)
		if err != nil {
			return nil, false
		}
		return plainJSON(kratosTOTPConfig{TOTPURL: url}), true
	default:
		// Lookup secrets are stored as keyed hashes, which no import can
		// use; passkeys and the rest are not imported by this server.
		return nil, false
	}
}

// plainJSON is v as JSON without HTML escaping, so a TOTP URL's & reads as
// itself in an export.
func plainJSON(v any) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // only plain structs of strings come here
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// AppendJSON appends k as one line of JSON, as encoding/json would write it
// (same keys, same omissions, HTML characters not escaped) at a fraction of
// the cost: an export of a million identities spent a quarter of its time in
// encoding/json's reflection and its re-scan of every embedded document.
// Embedded documents (traits, metadata, configs) are written as stored,
// compacted when they hold a line break, so each identity stays on one line.
func (k *KratosIdentity) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, k.ID.String()...)
	b = append(b, `","schema_id":`...)
	b = appendJSONString(b, k.SchemaID)
	b = append(b, `,"state":`...)
	b = appendJSONString(b, k.State)
	if k.StateChangedAt != nil {
		b = append(b, `,"state_changed_at":`...)
		b = appendJSONTime(b, *k.StateChangedAt)
	}
	b = append(b, `,"traits":`...)
	b = appendRawJSON(b, k.Traits)
	if k.ExternalID != nil {
		b = append(b, `,"external_id":`...)
		b = appendJSONString(b, *k.ExternalID)
	}
	if len(k.Credentials) > 0 {
		b = append(b, `,"credentials":{`...)
		for i, typ := range slices.Sorted(maps.Keys(k.Credentials)) {
			c := k.Credentials[typ]
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, typ)
			b = append(b, `:{"type":`...)
			b = appendJSONString(b, c.Type)
			b = append(b, `,"identifiers":`...)
			if c.Identifiers == nil {
				b = append(b, "null"...)
			} else {
				b = append(b, '[')
				for j, id := range c.Identifiers {
					if j > 0 {
						b = append(b, ',')
					}
					b = appendJSONString(b, id)
				}
				b = append(b, ']')
			}
			if len(c.Config) > 0 {
				b = append(b, `,"config":`...)
				b = appendRawJSON(b, c.Config)
			}
			b = append(b, `,"version":`...)
			b = strconv.AppendInt(b, int64(c.Version), 10)
			b = append(b, `,"created_at":`...)
			b = appendJSONTime(b, c.CreatedAt)
			b = append(b, `,"updated_at":`...)
			b = appendJSONTime(b, c.UpdatedAt)
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	b = append(b, `,"verifiable_addresses":`...)
	if k.VerifiableAddresses == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, a := range k.VerifiableAddresses {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"id":"`...)
			b = append(b, a.ID.String()...)
			b = append(b, `","value":`...)
			b = appendJSONString(b, a.Value)
			b = append(b, `,"verified":`...)
			b = strconv.AppendBool(b, a.Verified)
			b = append(b, `,"via":`...)
			b = appendJSONString(b, a.Via)
			b = append(b, `,"status":`...)
			b = appendJSONString(b, a.Status)
			if a.VerifiedAt != nil {
				b = append(b, `,"verified_at":`...)
				b = appendJSONTime(b, *a.VerifiedAt)
			}
			b = append(b, `,"created_at":`...)
			b = appendJSONTime(b, a.CreatedAt)
			b = append(b, `,"updated_at":`...)
			b = appendJSONTime(b, a.UpdatedAt)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"recovery_addresses":`...)
	if k.RecoveryAddresses == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, a := range k.RecoveryAddresses {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"id":"`...)
			b = append(b, a.ID.String()...)
			b = append(b, `","value":`...)
			b = appendJSONString(b, a.Value)
			b = append(b, `,"via":`...)
			b = appendJSONString(b, a.Via)
			b = append(b, `,"created_at":`...)
			b = appendJSONTime(b, a.CreatedAt)
			b = append(b, `,"updated_at":`...)
			b = appendJSONTime(b, a.UpdatedAt)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"metadata_public":`...)
	b = appendRawJSON(b, k.MetadataPublic)
	b = append(b, `,"metadata_admin":`...)
	b = appendRawJSON(b, k.MetadataAdmin)
	b = append(b, `,"created_at":`...)
	b = appendJSONTime(b, k.CreatedAt)
	b = append(b, `,"updated_at":`...)
	b = appendJSONTime(b, k.UpdatedAt)
	return append(b, '}')
}

// appendRawJSON appends a stored document: null when empty, compacted when
// it spans lines.
func appendRawJSON(b []byte, raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return append(b, "null"...)
	}
	if bytes.ContainsAny(raw, "\n\r") {
		var buf bytes.Buffer
		if json.Compact(&buf, raw) == nil {
			return append(b, buf.Bytes()...)
		}
	}
	return append(b, raw...)
}

// appendJSONTime appends t as encoding/json writes a time.Time.
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendJSONString appends s as a JSON string as encoding/json writes it
// without HTML escaping: quotes, backslashes and control characters
// escaped, invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
