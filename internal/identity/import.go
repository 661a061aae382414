package identity

import (
	"context"
	"runtime"
	"sync"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/model"
)

// ImportResult is the outcome of one imported identity: the identity, or why
// it was refused.
type ImportResult struct {
	Identity *model.Identity
	Err      error
}

// Import creates up to MaxImport identities. Items are checked on their own
// and written in one transaction with a savepoint each, so a bad item fails
// only itself and nothing of it is written. Each identity comes back as
// stored, with every relation, built from what was written: nothing is read
// back.
func (s *Service) Import(ctx context.Context, ins []*model.CreateIdentityInput) ([]ImportResult, error) {
	if len(ins) > MaxImport {
		return nil, model.Errorf(model.CodeBadUserInput, "at most %d identities can be imported per call, got %d", MaxImport, len(ins))
	}
	results := make([]ImportResult, len(ins))
	writes := make([]*db.IdentityWrite, len(ins))

	// Hashing plaintext passwords is the slow part; the hasher bounds how
	// many run at once, so a few workers keep it busy.
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				writes[i], results[i].Err = s.prepareCreate(ctx, ins[i])
			}
		})
	}
	for i := range ins {
		next <- i
	}
	close(next)
	wg.Wait()

	var batch []*db.IdentityWrite
	var at []int
	for i, w := range writes {
		if results[i].Err == nil {
			// The workers drew ids in whatever order they ran; ids drawn
			// again here, in input order, keep the import's order in
			// listings (ids sort by creation).
			w.Identity.ID = uuid.Must(uuid.NewV7())
			if err := s.verifyNew(w, ins[i]); err != nil {
				return nil, err
			}
			batch = append(batch, w)
			at = append(at, i)
		}
	}
	created, err := s.store.CreateIdentities(ctx, batch)
	if err != nil {
		return nil, err
	}
	for k, c := range created {
		results[at[k]] = ImportResult{Identity: c.Identity, Err: c.Err}
	}
	return results, nil
}
