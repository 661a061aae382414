package session

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/identityd/identityd/model"
	"github.com/identityd/identityd/schemas"
)

// ThrottleConfig limits failed logins. After Free failures a key is blocked
// for 1s, doubling with each further failure up to Max. Keys are the
// identifier (stops guessing one account's password from many addresses) and
// the client address (stops trying many accounts from one address, with a
// higher allowance since many users may share an address). The counts live
// in the database, so the limit holds across server processes.
type ThrottleConfig struct {
	FreePerIdentifier int
	FreePerAddress    int
	Max               time.Duration
	// IdentifierMax caps the wait of an identifier from anywhere.
	IdentifierMax time.Duration
	// Window is how long a failure is remembered.
	Window time.Duration
}

// DefaultThrottle is 5 free failures per identifier, 20 per address, at most
// 15 minutes blocked, failures forgotten after an hour.
func DefaultThrottle() ThrottleConfig {
	return ThrottleConfig{FreePerIdentifier: 5, FreePerAddress: 20, Max: 15 * time.Minute, IdentifierMax: time.Minute, Window: time.Hour}
}

// throttleKeys returns the identifier key first, then the address key.
func (s *Service) throttleKeys(identifier string, c Client) []string {
	id := identifier
	if cands := schemas.LoginCandidates(identifier); len(cands) > 0 {
		id = cands[len(cands)-1] // the most normalised form
	}
	keys := []string{"id:" + id}
	if c.IP != "" {
		keys = append(keys, "ip:"+c.IP)
	}
	return keys
}

func (s *Service) checkThrottle(ctx context.Context, keys []string) error {
	until, err := s.store.LoginBlockedUntil(ctx, keys, s.clock())
	if err != nil {
		return err
	}
	if until.IsZero() {
		return nil
	}
	wait := int(math.Ceil(until.Sub(s.clock()).Seconds()))
	return model.Errorf(model.CodeTooManyAttempts, "too many failed attempts: try again in %d second(s)", max(wait, 1))
}

func (s *Service) recordFailure(ctx context.Context, keys []string) error {
	now := s.clock()
	for _, k := range keys {
		free := s.cfg.Throttle.FreePerIdentifier
		if strings.HasPrefix(k, "ip:") {
			free = s.cfg.Throttle.FreePerAddress
		}
		_, err := s.store.RecordLoginFailure(ctx, k, now, s.cfg.Throttle.Window, func(failures int) time.Time {
			if failures < free {
				return time.Time{}
			}
			d := time.Second << min(failures-free, 20)
			return now.Add(min(d, s.cfg.Throttle.Max))
		})
		if err != nil {
			return fmt.Errorf("record login failure: %w", err)
		}
	}
	return nil
}
