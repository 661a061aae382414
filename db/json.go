package db

import (
	"database/sql/driver"
	"fmt"
)

// rawJSON stores a JSON document as its exact bytes: JSON on PostgreSQL
// (kept as written), TEXT on SQLite. It never passes
// through map[string]any, so no number is ever rounded. nil is SQL NULL.
type rawJSON []byte

// Value writes the document as text; PostgreSQL keeps it as JSON, unchanged.
func (j rawJSON) Value() (driver.Value, error) {
	if j == nil {
		return nil, nil
	}
	return string(j), nil
}

// Scan copies the document, since drivers reuse their buffers.
func (j *rawJSON) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*j = nil
	case []byte:
		*j = append(rawJSON(nil), v...)
	case string:
		*j = rawJSON(v)
	default:
		return fmt.Errorf("rawJSON: cannot scan %T", src)
	}
	return nil
}
