package graph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/identityd/identityd/model"
)

func schema(t *testing.T) *ast.Schema {
	t.Helper()
	return NewExecutableSchema(Config{Resolvers: &Resolver{}}).Schema()
}

// TestEveryOperationHasAnAccessDirective walks the schema: a Query or
// Mutation field without @access is a field nobody decided who may call.
func TestEveryOperationHasAnAccessDirective(t *testing.T) {
	s := schema(t)
	for _, typ := range []*ast.Definition{s.Query, s.Mutation} {
		if typ == nil {
			continue
		}
		for _, f := range typ.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			if f.Directives.ForName("access") == nil {
				t.Errorf("%s.%s has no @access directive", typ.Name, f.Name)
			}
		}
	}
}

// TestEverythingHasADescription walks the schema: every type, field,
// argument, input field, enum value and directive of ours has a
// description, since the schema is the documentation a frontend or console
// developer reads (in the playground, or any client through introspection).
func TestEverythingHasADescription(t *testing.T) {
	s := schema(t)
	missing := func(what string) { t.Errorf("%s has no description", what) }
	args := func(owner string, as ast.ArgumentDefinitionList) {
		for _, a := range as {
			if strings.TrimSpace(a.Description) == "" {
				missing(fmt.Sprintf("argument %s(%s:)", owner, a.Name))
			}
		}
	}
	for _, typ := range s.Types {
		if typ.BuiltIn || strings.HasPrefix(typ.Name, "__") {
			continue
		}
		if strings.TrimSpace(typ.Description) == "" {
			missing(fmt.Sprintf("%s %s", strings.ToLower(string(typ.Kind)), typ.Name))
		}
		for _, f := range typ.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			if strings.TrimSpace(f.Description) == "" {
				missing(fmt.Sprintf("field %s.%s", typ.Name, f.Name))
			}
			args(typ.Name+"."+f.Name, f.Arguments)
		}
		for _, v := range typ.EnumValues {
			if strings.TrimSpace(v.Description) == "" {
				missing(fmt.Sprintf("enum value %s.%s", typ.Name, v.Name))
			}
		}
	}
	for _, d := range s.Directives {
		if d.Position != nil && d.Position.Src != nil && d.Position.Src.BuiltIn {
			continue
		}
		if strings.TrimSpace(d.Description) == "" {
			missing("directive @" + d.Name)
		}
		args("@"+d.Name, d.Arguments)
	}
}

// TestOperationsSayWhoMayCallThem: applied directives do not show through
// standard introspection, so each Query and Mutation field's description
// repeats its @access requirement as "Access: admin." (or session, public).
func TestOperationsSayWhoMayCallThem(t *testing.T) {
	s := schema(t)
	for _, typ := range []*ast.Definition{s.Query, s.Mutation} {
		for _, f := range typ.Fields {
			d := f.Directives.ForName("access")
			if strings.HasPrefix(f.Name, "__") || d == nil {
				continue
			}
			want := "Access: " + strings.ToLower(d.Arguments.ForName("requires").Value.Raw) + "."
			if !strings.Contains(f.Description, want) {
				t.Errorf("%s.%s: description does not say %q", typ.Name, f.Name, want)
			}
		}
	}
}

// TestAdminOnlyFields pins which fields only admins may read.
func TestAdminOnlyFields(t *testing.T) {
	s := schema(t)
	for _, tc := range []struct{ typ, field string }{
		{"Identity", "metadataAdmin"},
		{"Identity", "credentials"},
		{"Query", "identity"},
		{"Query", "identities"},
		{"Mutation", "createIdentity"},
		{"Mutation", "updateIdentity"},
		{"Mutation", "patchIdentity"},
		{"Mutation", "deleteIdentity"},
		{"Mutation", "importIdentities"},
		{"Query", "session"},
		{"Query", "sessions"},
	} {
		f := s.Types[tc.typ].Fields.ForName(tc.field)
		if f == nil {
			t.Errorf("%s.%s missing", tc.typ, tc.field)
			continue
		}
		d := f.Directives.ForName("access")
		if d == nil || d.Arguments.ForName("requires").Value.Raw != "ADMIN" {
			t.Errorf("%s.%s is not @access(requires: ADMIN)", tc.typ, tc.field)
		}
		if f.Type.NonNull && tc.typ == "Identity" {
			t.Errorf("%s.%s must be nullable so a refusal nulls only itself", tc.typ, tc.field)
		}
	}
}

func TestAccessDirective(t *testing.T) {
	ok := func(context.Context) (any, error) { return "value", nil }
	session := &model.Session{}
	tests := []struct {
		name     string
		caller   *model.Caller
		requires model.Access
		wantCode model.ErrorCode
	}{
		{"public anonymous", model.NewCaller(false, false, nil), model.AccessPublic, ""},
		{"admin anonymous", model.NewCaller(false, false, nil), model.AccessAdmin, model.CodeUnauthenticated},
		{"admin with admin key", model.NewCaller(true, true, nil), model.AccessAdmin, ""},
		{"admin with session", model.NewCaller(false, true, func() (*model.Session, error) { return session, nil }), model.AccessAdmin, model.CodeForbidden},
		{"admin with bad token", model.NewCaller(false, true, func() (*model.Session, error) {
			return nil, model.Errorf(model.CodeUnauthenticated, "bad")
		}), model.AccessAdmin, model.CodeUnauthenticated},
		{"session anonymous", model.NewCaller(false, false, nil), model.AccessSession, model.CodeUnauthenticated},
		{"session with admin key", model.NewCaller(true, true, nil), model.AccessSession, model.CodeUnauthenticated},
		{"session with session", model.NewCaller(false, true, func() (*model.Session, error) { return session, nil }), model.AccessSession, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := model.NewContextWithCaller(context.Background(), tc.caller)
			got, err := access(ctx, nil, ok, tc.requires)
			if tc.wantCode == "" {
				if err != nil || got != "value" {
					t.Fatalf("got %v, %v; want the value", got, err)
				}
				return
			}
			if got != nil || model.ErrorCodeOf(err) != tc.wantCode {
				t.Fatalf("got %v, %v; want nil and %s", got, err, tc.wantCode)
			}
		})
	}
}

// TestErrorPresenterHidesInternals: an unexpected error reaches the client
// as "internal error" with a request id, never its text.
func TestErrorPresenterHidesInternals(t *testing.T) {
	present := errorPresenter(slog.New(slog.NewTextHandler(io.Discard, nil)))
	secret := fmt.Errorf("pq: password authentication failed for user admin at 10.0.0.5: %w", errors.New("hash $2a$10$abc"))
	got := present(context.Background(), secret)
	if strings.Contains(got.Message, "password") || strings.Contains(got.Message, "10.0.0.5") || got.Extensions["code"] != "INTERNAL_SERVER_ERROR" {
		t.Fatalf("internal error shown as %q %v", got.Message, got.Extensions)
	}
	app := present(context.Background(), model.Errorf(model.CodeForbidden, "this field is for admins only"))
	if app.Message != "this field is for admins only" || app.Extensions["code"] != "FORBIDDEN" {
		t.Fatalf("app error shown as %q %v", app.Message, app.Extensions)
	}
}
