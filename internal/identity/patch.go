package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/model"
)

// patchDoc is the identity as Kratos writes it in JSON, the document an RFC
// 6902 patch applies to, so Kratos users' patches work unchanged. Fields a
// patch may not change are in it too, so that "test" operations on them
// work and a change to them can be refused. external_id is always there
// (null when unset), so "add", "replace" and "remove" all work on it.
type patchDoc struct {
	ID                  uuid.UUID       `json:"id"`
	ExternalID          *string         `json:"external_id"`
	SchemaID            string          `json:"schema_id"`
	State               string          `json:"state"`
	StateChangedAt      *time.Time      `json:"state_changed_at,omitempty"`
	Traits              json.RawMessage `json:"traits"`
	VerifiableAddresses []patchAddress  `json:"verifiable_addresses"`
	MetadataPublic      json.RawMessage `json:"metadata_public"`
	MetadataAdmin       json.RawMessage `json:"metadata_admin"`
	CreatedAt           time.Time       `json:"created_at"`
	UpdatedAt           time.Time       `json:"updated_at"`
}

// patchAddress is a verifiable address as Kratos writes it. Admins may
// patch its verification state (verified, verified_at, status); the rest
// follows the traits.
type patchAddress struct {
	ID         uuid.UUID  `json:"id"`
	Value      string     `json:"value"`
	Verified   bool       `json:"verified"`
	Via        string     `json:"via"`
	Status     string     `json:"status"`
	VerifiedAt *time.Time `json:"verified_at"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
}

// Patch applies an RFC 6902 patch to an identity and stores the result after
// validating it like any other write. Operations apply in order; the first
// that fails stops everything with INVALID_PATCH at /patch/<index>.
func (s *Service) Patch(ctx context.Context, id uuid.UUID, ops []*model.JSONPatchOperation) (*model.Identity, error) {
	return s.store.UpdateIdentity(ctx, id, func(cur *model.Identity) (*db.IdentityWrite, error) {
		before := patchDoc{
			ID: cur.ID, ExternalID: cur.ExternalID, SchemaID: cur.SchemaID, State: stateJSON(cur.State), StateChangedAt: cur.StateChangedAt,
			Traits: json.RawMessage(cur.Traits), VerifiableAddresses: patchAddresses(cur.VerifiableAddresses),
			MetadataPublic: nullable(cur.MetadataPublic), MetadataAdmin: nullable(cur.MetadataAdmin),
			CreatedAt: cur.CreatedAt, UpdatedAt: cur.UpdatedAt,
		}
		doc, err := json.Marshal(before)
		if err != nil {
			return nil, err
		}
		for i, op := range ops {
			if doc, err = applyOne(doc, op); err != nil {
				return nil, &model.Error{Code: model.CodeInvalidPatch, Path: fmt.Sprintf("/patch/%d", i), Message: err.Error()}
			}
		}
		after, err := decodePatched(doc, before)
		if err != nil {
			return nil, blame(err, ops)
		}
		now := s.clock()
		states, err := patchedStates(before.VerifiableAddresses, after.VerifiableAddresses, now)
		if err != nil {
			return nil, blame(err, ops)
		}
		if _, err := externalID(after.ExternalID, "/external_id"); err != nil {
			return nil, blame(err, ops)
		}
		next := *cur
		next.SchemaID = after.SchemaID
		next.Traits = model.JSON(after.Traits)
		next.MetadataPublic = model.JSON(after.MetadataPublic)
		next.MetadataAdmin = model.JSON(after.MetadataAdmin)
		switch after.State {
		case model.StateActiveJSON:
			next.State = model.IdentityStateActive
		case model.StateInactiveJSON:
			next.State = model.IdentityStateInactive
		default:
			return nil, blame(&model.Error{Code: model.CodeInvalidPatch, Path: "/state", Message: `state must be "active" or "inactive"`}, ops)
		}
		w, err := s.prepareUpdateWith(ctx, cur, &next, writeOptions{externalID: after.ExternalID, externalIDPath: "/external_id", update: true})
		if err != nil {
			return nil, err
		}
		for _, st := range states {
			j := slices.IndexFunc(w.VerifiableAddresses, func(a db.Address) bool { return a.Via == st.via && a.Value == st.value })
			if j < 0 {
				return nil, blame(&model.Error{Code: model.CodeInvalidPatch, Path: st.path,
					Message: "this address goes with the change of the traits, so its verification state cannot be set"}, ops)
			}
			w.VerifiableAddresses[j].State = st.state
		}
		return w, nil
	})
}

// patchAddresses is an identity's verifiable addresses as the patched
// document holds them.
func patchAddresses(as []*model.VerifiableAddress) []patchAddress {
	out := make([]patchAddress, len(as))
	for i, a := range as {
		out[i] = patchAddress{ID: a.ID, Value: a.Value, Verified: a.Verified, Via: a.Via, Status: a.Status,
			VerifiedAt: a.VerifiedAt, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
	}
	return out
}

// patchedState is the verification state a patch gave one address.
type patchedState struct {
	via, value, path string
	state            *db.AddressState
}

// patchedStates compares the verifiable addresses before and after a patch:
// only their verification state may change, and it must hang together as
// in an input's verifiableAddresses. A field the patch leaves alone follows
// the others: verifying sets verified_at (now) and status completed;
// unverifying clears verified_at and moves a completed status back to
// pending.
func patchedStates(before, after []patchAddress, now time.Time) ([]patchedState, error) {
	if len(after) != len(before) {
		return nil, &model.Error{Code: model.CodeInvalidPatch, Path: "/verifiable_addresses",
			Message: "verifiable addresses cannot be added or removed by a patch: they follow the traits (change the traits, or give updateIdentity verifiableAddresses)"}
	}
	var out []patchedState
	for i, b := range before {
		a := after[i]
		base := fmt.Sprintf("/verifiable_addresses/%d", i)
		for _, f := range []struct {
			name    string
			changed bool
		}{
			{"id", a.ID != b.ID},
			{"value", a.Value != b.Value},
			{"via", a.Via != b.Via},
			{"created_at", !a.CreatedAt.Equal(b.CreatedAt)},
			{"updated_at", !a.UpdatedAt.Equal(b.UpdatedAt)},
		} {
			if f.changed {
				return nil, &model.Error{Code: model.CodeInvalidPatch, Path: base + "/" + f.name,
					Message: "only verified, verified_at and status of a verifiable address can be patched: its " + f.name + " follows the traits"}
			}
		}
		atChanged := !timeEqual(a.VerifiedAt, b.VerifiedAt)
		if a.Verified == b.Verified && a.Status == b.Status && !atChanged {
			continue
		}
		st := &db.AddressState{Verified: a.Verified}
		switch {
		case a.Verified && a.VerifiedAt != nil:
			at := a.VerifiedAt.UTC().Truncate(time.Microsecond)
			st.VerifiedAt = &at
		case a.Verified:
			st.VerifiedAt = &now
		case a.VerifiedAt != nil && atChanged:
			return nil, &model.Error{Code: model.CodeInvalidPatch, Path: base + "/verified_at",
				Message: "verified_at is only for a verified address: set verified to true too"}
		}
		switch {
		case a.Status == b.Status && a.Verified:
			st.Status = model.VerificationCompleted
		case a.Status == b.Status && b.Status == model.VerificationCompleted:
			st.Status = model.VerificationPending
		case a.Status != model.VerificationPending && a.Status != model.VerificationSent && a.Status != model.VerificationCompleted:
			return nil, &model.Error{Code: model.CodeInvalidPatch, Path: base + "/status",
				Message: fmt.Sprintf(`status must be "pending", "sent" or "completed" (got %q)`, a.Status)}
		case a.Verified != (a.Status == model.VerificationCompleted):
			return nil, &model.Error{Code: model.CodeInvalidPatch, Path: base + "/status",
				Message: `status is "completed" exactly when the address is verified: change verified and status together`}
		default:
			st.Status = a.Status
		}
		out = append(out, patchedState{via: b.Via, value: b.Value, path: base, state: st})
	}
	return out, nil
}

// applyOne applies a single operation so a failure can name its index.
func applyOne(doc []byte, op *model.JSONPatchOperation) ([]byte, error) {
	raw := map[string]any{"op": op.Op, "path": op.Path}
	if op.From != nil {
		raw["from"] = *op.From
	}
	switch op.Op {
	case "add", "replace", "test":
		if op.Value == nil {
			raw["value"] = json.RawMessage("null")
		} else {
			raw["value"] = json.RawMessage(op.Value)
		}
	}
	b, err := json.Marshal([]any{raw})
	if err != nil {
		return nil, err
	}
	p, err := jsonpatch.DecodePatch(b)
	if err != nil {
		return nil, err
	}
	opts := jsonpatch.NewApplyOptions()
	opts.EnsurePathExistsOnAdd = false
	return p.ApplyWithOptions(doc, opts)
}

// decodePatched reads the patched document back, refusing changes to what a
// patch may not touch and keys the identity does not have.
func decodePatched(doc []byte, before patchDoc) (patchDoc, error) {
	var after patchDoc
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&after); err != nil {
		return after, &model.Error{Code: model.CodeInvalidPatch, Path: "/patch",
			Message: fmt.Sprintf("the patched identity is not valid: %v", err)}
	}
	immutable := []struct {
		path    string
		changed bool
	}{
		{"/id", after.ID != before.ID},
		{"/created_at", !after.CreatedAt.Equal(before.CreatedAt)},
		{"/updated_at", !after.UpdatedAt.Equal(before.UpdatedAt)},
		{"/state_changed_at", !timeEqual(after.StateChangedAt, before.StateChangedAt)},
	}
	for _, f := range immutable {
		if f.changed {
			return after, &model.Error{Code: model.CodeInvalidPatch, Path: f.path, Message: f.path[1:] + " cannot be changed"}
		}
	}
	if len(after.Traits) == 0 || bytes.Equal(after.Traits, []byte("null")) {
		after.Traits = json.RawMessage("{}")
	}
	return after, nil
}

func timeEqual(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func stateJSON(s model.IdentityState) string {
	if s == model.IdentityStateInactive {
		return model.StateInactiveJSON
	}
	return model.StateActiveJSON
}

func nullable(j model.JSON) json.RawMessage {
	if len(j) == 0 {
		return json.RawMessage("null")
	}
	return json.RawMessage(j)
}

// blame points an error about a field of the patched document at the last
// operation that touched it: /patch/<index> is a pointer into the input, as
// every userError path is; the message names the field.
func blame(err error, ops []*model.JSONPatchOperation) error {
	e, ok := err.(*model.Error)
	if !ok || e.Path == "" || e.Path == "/patch" {
		return err
	}
	for i := len(ops) - 1; i >= 0; i-- {
		touches := func(p string) bool { return p == e.Path || strings.HasPrefix(p, e.Path+"/") }
		if touches(ops[i].Path) || (ops[i].From != nil && touches(*ops[i].From)) {
			return &model.Error{Code: e.Code, Path: fmt.Sprintf("/patch/%d", i), Message: e.Message}
		}
	}
	return err
}
