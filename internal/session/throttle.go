package session

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/model"
	"github.com/identityd/identityd/schemas"
)

// ThrottleConfig limits password guessing: login, and the current password
// of changeMyPassword. Every attempt that is going to compare a password is
// first charged, atomically and before the hash is computed, to three
// counters:
//
//   - the client address (an IPv4 address; an IPv6 address by its /64, which
//     one subscriber usually holds whole): FreePerAddress attempts, then
//     waits of up to Max. It stops one address trying many accounts, with a
//     large allowance because many people may share an address.
//   - the identifier (for changeMyPassword: the identity) from that address:
//     FreePerIdentifier attempts, then waits of up to Max. It stops one
//     address guessing one account's password for long.
//   - the identifier from anywhere: FreePerIdentifier attempts, then waits of
//     up to IdentifierMax only. It leaves an attacker spread over many
//     addresses about one guess per IdentifierMax, while nobody, whatever
//     they do, can keep the owner (from an address of their own) out for
//     longer than IdentifierMax at a time.
//
// The attempt that reaches a counter's free count blocks it for 1s, each
// further attempt for twice as long as the one before (2s, 4s, …), up to
// the counter's cap. While any of its counters is blocked an attempt is
// refused with TOO_MANY_ATTEMPTS, saying when to retry, and is counted
// nowhere: hammering costs the attacker nothing but gains nothing, and
// cannot prolong a block. Because attempts are counted before the compare,
// concurrent guesses cannot slip past the limit: exactly FreePerIdentifier
// of a burst are compared. A right password hands its attempt back: the
// identifier's counters start again, the address's gets the one attempt
// back. A counter forgets its attempts Window after the last one. The
// counters live in the database, so the limits hold across server
// processes; PruneThrottle deletes the ones that no longer count.
type ThrottleConfig struct {
	// FreePerIdentifier is the attempts against one identifier, from one
	// address and from anywhere, before waiting.
	FreePerIdentifier int
	// FreePerAddress is the attempts from one address before waiting.
	FreePerAddress int
	// Max caps the wait of an address, and of an identifier from one
	// address.
	Max time.Duration
	// IdentifierMax caps the wait of an identifier from anywhere: the
	// longest anyone can keep the owner out at a time.
	IdentifierMax time.Duration
	// Window is how long a counter remembers its attempts after the last.
	Window time.Duration
}

// DefaultThrottle is 5 free attempts per identifier, 20 per address, at
// most 15 minutes blocked (1 minute for an identifier from anywhere),
// attempts forgotten after an hour.
func DefaultThrottle() ThrottleConfig {
	return ThrottleConfig{FreePerIdentifier: 5, FreePerAddress: 20, Max: 15 * time.Minute, IdentifierMax: time.Minute, Window: time.Hour}
}

// throttleKeys are the counters of one kind of attempt.
type throttleKeys struct {
	address  *db.ThrottleKey // nil without a client address
	subjects []db.ThrottleKey
}

func (k throttleKeys) all() []db.ThrottleKey {
	if k.address == nil {
		return k.subjects
	}
	return append([]db.ThrottleKey{*k.address}, k.subjects...)
}

// keys builds the three counters (see ThrottleConfig) for subject, named
// within kind. The address comes last inside a name: it holds no NUL, so no
// subject can be written to look like another subject's pair.
func (s *Service) keys(kind, subject string, c Client) throttleKeys {
	t := s.cfg.Throttle
	k := throttleKeys{subjects: []db.ThrottleKey{{Key: kind + "\x00" + subject, Free: t.FreePerIdentifier, Cap: t.IdentifierMax}}}
	if c.IP != "" {
		group := addressGroup(c.IP)
		k.address = &db.ThrottleKey{Key: "address\x00" + group, Free: t.FreePerAddress, Cap: t.Max}
		k.subjects = append(k.subjects, db.ThrottleKey{Key: kind + " from address\x00" + subject + "\x00" + group, Free: t.FreePerIdentifier, Cap: t.Max})
	}
	return k
}

// loginKeys are the counters of a login with identifier. Every spelling of
// one identifier counts as one (its most normalised form); one that no
// identity could hold counts as written.
func (s *Service) loginKeys(identifier string, c Client) throttleKeys {
	id := identifier
	if cands := schemas.LoginCandidates(identifier); len(cands) > 0 {
		id = cands[len(cands)-1]
	}
	return s.keys("login", id, c)
}

// passwordChangeKeys are the counters of changeMyPassword's current
// password, by the identity: a stolen session guesses against them.
func (s *Service) passwordChangeKeys(identityID uuid.UUID, c Client) throttleKeys {
	return s.keys("password change", identityID.String(), c)
}

// addressGroup is the client address as it is counted: an IPv4 address as
// it is, an IPv6 address by its /64. Something that is not an address (a
// unix socket peer) counts as written.
func addressGroup(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.WithZone("").Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// reserve charges one attempt to keys before a password is compared, or
// refuses it with TOO_MANY_ATTEMPTS when any of them is blocked.
func (s *Service) reserve(ctx context.Context, keys throttleKeys) error {
	return s.reserveIn(ctx, keys, s.cfg.Throttle.Window, func(secs int) string {
		return fmt.Sprintf("too many failed attempts: try again in %d second%s. Failures are counted per client address, "+
			"per account from that address and per account from anywhere; past a few, each further one "+
			"doubles the wait, and attempts refused meanwhile do not count", secs, plural(secs))
	})
}

// reserveIn charges one attempt to keys, counted over window, or refuses it
// with TOO_MANY_ATTEMPTS and the message say gives for the wait in seconds.
func (s *Service) reserveIn(ctx context.Context, keys throttleKeys, window time.Duration, say func(secs int) string) error {
	now := s.clock()
	until, err := s.store.ReserveLoginAttempt(ctx, keys.all(), now, window)
	if err != nil {
		return fmt.Errorf("throttle: %w", err)
	}
	return tooMany(until, now, say)
}

// tooMany is the refusal of an attempt blocked until until (none for the
// zero time), with the message say gives for the wait in seconds.
func tooMany(until, now time.Time, say func(secs int) string) error {
	if until.IsZero() {
		return nil
	}
	wait := time.Duration(math.Ceil(until.Sub(now).Seconds())) * time.Second
	wait = max(wait, time.Second)
	return &model.Error{Code: model.CodeTooManyAttempts, RetryAfter: wait, Message: say(int(wait / time.Second))}
}

// settle hands back the attempt reserved for a password that turned out
// right (or was never judged): the subject's counters start again, the
// address gets its one attempt back, so people sharing an address are not
// charged for signing in. A failure here costs nothing but a stale count.
func (s *Service) settle(ctx context.Context, keys throttleKeys) error {
	clear := make([]string, len(keys.subjects))
	for i, k := range keys.subjects {
		clear[i] = k.Key
	}
	var refund []db.ThrottleKey
	if keys.address != nil {
		refund = []db.ThrottleKey{*keys.address}
	}
	if err := s.store.SettleLoginAttempt(ctx, clear, refund); err != nil {
		return fmt.Errorf("throttle: %w", err)
	}
	return nil
}

// PruneThrottle deletes the attempt counters that no longer count anything
// (nothing within the window, no block). Run it periodically: without it a
// client trying many names grows the table without end.
func (s *Service) PruneThrottle(ctx context.Context) (int, error) {
	// The code flows' counters share the table: the longest window keeps
	// every counter that still counts.
	return s.store.PruneLoginThrottles(ctx, s.clock(), max(s.cfg.Throttle.Window, s.cfg.Codes.Throttle.Window))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
