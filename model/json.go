package model

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
)

// JSON is a JSON document kept as its exact bytes, so numbers survive every
// hop unchanged (9007199254740993 stays 9007199254740993). A nil JSON is null.
type JSON json.RawMessage

// MarshalGQLContext writes the document as is; null when empty. A stored
// document that is not valid JSON (the database holds what this service
// wrote, but a SQLite text column takes whatever a hand edit puts there) is
// refused with an error, which the error presenter logs and shows as an
// internal one, and the value is null: the transport writes answers as they
// are built (graph.postTransport), so this check, over the document's own
// bytes, is what keeps every answer valid JSON.
func (j JSON) MarshalGQLContext(_ context.Context, w io.Writer) error {
	if len(j) == 0 {
		_, _ = io.WriteString(w, "null")
		return nil
	}
	if !json.Valid(j) {
		return fmt.Errorf("a stored JSON document of %d bytes is not valid JSON", len(j))
	}
	_, err := w.Write(j)
	return err
}

// UnmarshalGQLContext is UnmarshalGQL.
func (j *JSON) UnmarshalGQLContext(_ context.Context, v any) error { return j.UnmarshalGQL(v) }

// UnmarshalGQL accepts what gqlgen decoded from variables (json.Number keeps
// numbers exact) or from inline literals (int64, float64: the GraphQL layer
// refuses literals that would not survive that conversion).
func (j *JSON) UnmarshalGQL(v any) error {
	if err := checkJSONValue(v); err != nil {
		return Errorf(CodeBadUserInput, "not a JSON value: %v", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return Errorf(CodeBadUserInput, "not a JSON value: %v", err)
	}
	*j = b
	return nil
}

// IsNull reports whether j is absent or the JSON null.
func (j JSON) IsNull() bool {
	return len(j) == 0 || bytes.Equal(bytes.TrimSpace(j), []byte("null"))
}

// MarshalJSON makes JSON embed as raw JSON in other documents.
func (j JSON) MarshalJSON() ([]byte, error) {
	if len(j) == 0 {
		return []byte("null"), nil
	}
	return j, nil
}

// UnmarshalJSON keeps the raw bytes.
func (j *JSON) UnmarshalJSON(b []byte) error {
	*j = append((*j)[:0], b...)
	return nil
}

// checkJSONValue refuses values that json.Marshal would mangle or reject with
// an unhelpful message: NaN and infinities, and types JSON has no word for.
func checkJSONValue(v any) error {
	switch x := v.(type) {
	case nil, bool, string, json.Number, int, int32, int64:
		return nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("number %v is not valid JSON", x)
		}
		return nil
	case []any:
		for _, e := range x {
			if err := checkJSONValue(e); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		for _, e := range x {
			if err := checkJSONValue(e); err != nil {
				return err
			}
		}
		return nil
	default:
		return fmt.Errorf("unsupported JSON value of type %T", v)
	}
}
