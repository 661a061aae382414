package graph

import (
	"github.com/identityd/identityd/model"
	"github.com/identityd/identityd/schemas"
)

// identitySchema is what frontends see of a configured schema.
func identitySchema(s *schemas.Schema) *model.IdentitySchema {
	return &model.IdentitySchema{ID: s.ID, Schema: model.JSON(s.Document)}
}
