package graph

import (
	"encoding/json"
	"io"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"

	"github.com/identityd/identityd/model"
)

// MarshalUUID writes a UUID in its canonical form.
func MarshalUUID(id uuid.UUID) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		_, _ = io.WriteString(w, strconv.Quote(id.String()))
	})
}

// UnmarshalUUID accepts a UUID string in any of the forms uuid.Parse knows.
func UnmarshalUUID(v any) (uuid.UUID, error) {
	s, ok := v.(string)
	if !ok {
		return uuid.Nil, model.Errorf(model.CodeBadUserInput, "a UUID must be a string, got %s", jsonKind(v))
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, model.Errorf(model.CodeBadUserInput, "%q is not a valid UUID", s)
	}
	return id, nil
}

// jsonKind names a decoded value's JSON type for error messages.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, int64, float64, int:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	default:
		return "a string"
	}
}
