package db

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/model"
)

// updateEvents are the events of an update of an identity from cur to out
// (both with every relation), by w, that ended revoked sessions: worked out
// here, from what the transaction read and wrote, so that every way of
// updating an identity (admin update and patch, own traits, credentials)
// records them alike. The actor is the request's (an admin key, or the
// signed-in identity).
func updateEvents(ctx context.Context, cur, out *model.Identity, w *IdentityWrite, revoked int) []*model.Event {
	now := w.Identity.UpdatedAt
	id := cur.ID
	var evs []*model.Event
	if paths := changedPaths(identityDocument(cur), identityDocument(out)); len(paths) > 0 {
		e := model.NewEvent(ctx, model.EventIdentityUpdated, id, false, now)
		e.ChangedPaths = paths
		evs = append(evs, e)
	}
	if cur.State != out.State {
		evs = append(evs, newEventData(ctx, model.EventIdentityStateChanged, id, false, now,
			map[string]any{"from": stateToDB(cur.State), "to": stateToDB(out.State)}))
	}
	before, after := credentialTypes(cur), credentialTypes(out)
	for _, t := range after {
		if !slices.Contains(before, t) {
			evs = append(evs, credentialEvent(ctx, model.EventCredentialAdded, id, false, now, t))
		}
	}
	for _, t := range before {
		if !slices.Contains(after, t) {
			evs = append(evs, credentialEvent(ctx, model.EventCredentialRemoved, id, false, now, t))
		}
	}
	if w.Password != nil && slices.Contains(before, CredentialPassword) {
		evs = append(evs, model.NewEvent(ctx, model.EventPasswordChanged, id, false, now))
	}
	if revoked > 0 {
		evs = append(evs, newEventData(ctx, model.EventSessionRevoked, id, false, now, map[string]any{"count": revoked}))
	}
	return evs
}

// newEventData is model.NewEvent with data, a JSON object of non-secret
// details.
func newEventData(ctx context.Context, typ string, identityID uuid.UUID, self bool, now time.Time, data map[string]any) *model.Event {
	e := model.NewEvent(ctx, typ, identityID, self, now)
	if data != nil {
		b, _ := json.Marshal(data)
		e.Data = model.JSON(b)
	}
	return e
}

// credentialEvent is a credential.added or credential.removed event for
// credential type typ (as stored: "password", "totp", "lookup_secret").
func credentialEvent(ctx context.Context, typ string, identityID uuid.UUID, self bool, now time.Time, credType string) *model.Event {
	return newEventData(ctx, typ, identityID, self, now, map[string]any{"credential_type": credType})
}

// credentialTypes are the stored names of ident's credential types.
func credentialTypes(ident *model.Identity) []string {
	out := make([]string, 0, len(ident.Credentials))
	for _, c := range ident.Credentials {
		out = append(out, credentialTypeToDB(c.Type))
	}
	return out
}

// identityDocument is ident as Kratos writes it in JSON, with what events
// compare: its own fields and its addresses, never a credential.
func identityDocument(ident *model.Identity) map[string]any {
	doc := map[string]any{
		"schema_id":       ident.SchemaID,
		"state":           stateToDB(ident.State),
		"traits":          decodeJSON(ident.Traits),
		"metadata_public": decodeJSON(ident.MetadataPublic),
		"metadata_admin":  decodeJSON(ident.MetadataAdmin),
		"external_id":     nil,
	}
	if ident.ExternalID != nil {
		doc["external_id"] = *ident.ExternalID
	}
	va := make([]any, len(ident.VerifiableAddresses))
	for i, a := range ident.VerifiableAddresses {
		var at any
		if a.VerifiedAt != nil {
			at = a.VerifiedAt.UTC().Format(time.RFC3339Nano)
		}
		va[i] = map[string]any{"value": a.Value, "via": a.Via, "verified": a.Verified, "status": a.Status, "verified_at": at}
	}
	ra := make([]any, len(ident.RecoveryAddresses))
	for i, a := range ident.RecoveryAddresses {
		ra[i] = map[string]any{"value": a.Value, "via": a.Via}
	}
	doc["verifiable_addresses"], doc["recovery_addresses"] = va, ra
	return doc
}

// decodeJSON decodes j keeping numbers as written; nil for nothing or null.
func decodeJSON(j model.JSON) any {
	if len(bytes.TrimSpace(j)) == 0 {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(j))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return nil
	}
	return v
}

// changedPaths lists the JSON pointers where b differs from a, in sorted
// order: an object member or array element added, removed or changed is
// named where it is, a changed value by its own path, never its value.
func changedPaths(a, b any) []string {
	var out []string
	diffJSON(a, b, "", &out)
	slices.Sort(out)
	return out
}

func diffJSON(a, b any, path string, out *[]string) {
	// An object that appears or goes (metadata set for the first time) is
	// named by its members, as if it had been empty.
	if _, ok := b.(map[string]any); ok && a == nil && path != "" {
		a = map[string]any{}
	}
	if _, ok := a.(map[string]any); ok && b == nil && path != "" {
		b = map[string]any{}
	}
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			break
		}
		keys := make([]string, 0, len(x)+len(y))
		for k := range x {
			keys = append(keys, k)
		}
		for k := range y {
			if _, seen := x[k]; !seen {
				keys = append(keys, k)
			}
		}
		for _, k := range keys {
			p := path + "/" + escapePointer(k)
			av, inA := x[k]
			bv, inB := y[k]
			if !inA || !inB {
				*out = append(*out, p)
				continue
			}
			diffJSON(av, bv, p, out)
		}
		return
	case []any:
		y, ok := b.([]any)
		if !ok {
			break
		}
		for i := 0; i < max(len(x), len(y)); i++ {
			p := path + "/" + strconv.Itoa(i)
			if i >= len(x) || i >= len(y) {
				*out = append(*out, p)
				continue
			}
			diffJSON(x[i], y[i], p, out)
		}
		return
	}
	if !reflect.DeepEqual(a, b) {
		if path == "" {
			path = "/"
		}
		*out = append(*out, path)
	}
}

// escapePointer escapes a member name for a JSON pointer (RFC 6901).
func escapePointer(k string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(k)
}
