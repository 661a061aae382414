package db

import (
	"context"
	"encoding/json"

	"github.com/uptrace/bun"

	"github.com/identityd/identityd/model"
)

// newIdentityRows are every row of one new identity.
type newIdentityRows struct {
	identity    *identityRow
	credentials []*credentialRow
	identifiers []*identifierRow
	verifiable  []*verifiableAddressRow
	recovery    []*recoveryAddressRow
}

// credentialConfigs lists the credential types w needs, in a stable order
// (each type with an identifier, then any secret being set), with the
// config to store for each; nil means no secret was given.
func credentialConfigs(w *IdentityWrite) (types []string, configs map[string]rawJSON) {
	configs = map[string]rawJSON{}
	need := func(typ string, cfg rawJSON) {
		if _, ok := configs[typ]; !ok {
			types = append(types, typ)
			configs[typ] = cfg
		} else if cfg != nil {
			configs[typ] = cfg
		}
	}
	for _, ident := range w.Identifiers {
		need(ident.Type, nil)
	}
	if w.Password != nil {
		need(CredentialPassword, passwordConfig(w.Password.Hash))
	}
	if w.OIDC != nil {
		b, _ := json.Marshal(map[string]any{"providers": w.OIDC})
		need(CredentialOIDC, b)
	}
	return types, configs
}

// passwordConfig is the stored form of a password credential, as Kratos
// writes it.
func passwordConfig(hash string) rawJSON {
	b, _ := json.Marshal(map[string]string{"hashed_password": hash})
	return b
}

// rowsFor lays out the rows a new identity needs.
func rowsFor(w *IdentityWrite) *newIdentityRows {
	id := w.Identity.ID
	now := w.Identity.UpdatedAt.UTC()
	out := &newIdentityRows{identity: newIdentityRow(w.Identity)}
	types, configs := credentialConfigs(w)
	credIDs := map[string]*credentialRow{}
	for _, typ := range types {
		cfg := configs[typ]
		if cfg == nil {
			cfg = rawJSON("{}")
		}
		c := &credentialRow{ID: newID(), IdentityID: id, Type: typ, Config: cfg, CreatedAt: now, UpdatedAt: now}
		credIDs[typ] = c
		out.credentials = append(out.credentials, c)
	}
	for _, ident := range w.Identifiers {
		out.identifiers = append(out.identifiers, &identifierRow{ID: newID(), IdentityID: id, CredentialID: credIDs[ident.Type].ID,
			Type: ident.Type, Identifier: ident.Value, CreatedAt: now, UpdatedAt: now})
	}
	for _, a := range w.VerifiableAddresses {
		out.verifiable = append(out.verifiable, &verifiableAddressRow{ID: newID(), IdentityID: id, Via: a.Via, Value: a.Value,
			Status: model.VerificationPending, CreatedAt: now, UpdatedAt: now})
	}
	for _, a := range w.RecoveryAddresses {
		out.recovery = append(out.recovery, &recoveryAddressRow{ID: newID(), IdentityID: id, Via: a.Via, Value: a.Value, CreatedAt: now, UpdatedAt: now})
	}
	return out
}

// insertBulk writes many new identities with one multi-row INSERT per table:
// a batch of 1,000 costs five statements instead of thousands.
func insertBulk(ctx context.Context, idb bun.IDB, ws []*IdentityWrite) error {
	var (
		ids   []*identityRow
		creds []*credentialRow
		idfs  []*identifierRow
		vas   []*verifiableAddressRow
		ras   []*recoveryAddressRow
	)
	for _, w := range ws {
		r := rowsFor(w)
		ids = append(ids, r.identity)
		creds = append(creds, r.credentials...)
		idfs = append(idfs, r.identifiers...)
		vas = append(vas, r.verifiable...)
		ras = append(ras, r.recovery...)
	}
	inserts := []any{&ids, &creds, &idfs, &vas, &ras}
	lens := []int{len(ids), len(creds), len(idfs), len(vas), len(ras)}
	for i, rows := range inserts {
		if lens[i] == 0 {
			continue
		}
		if _, err := idb.NewInsert().Model(rows).Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}
