package session

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/internal/code"
	"github.com/identityd/identityd/model"
	"github.com/identityd/identityd/schemas"
)

// CodeConfig is verification and recovery by one-time code.
type CodeConfig struct {
	// VerificationLifespan is how long a verification code is valid.
	VerificationLifespan time.Duration
	// RecoveryLifespan is how long a recovery code is valid, and an
	// admin-issued one when the admin does not say.
	RecoveryLifespan time.Duration
	// Throttle limits requests for codes and checks of codes, per address
	// and per client address (see ThrottleConfig). Every request counts;
	// a check that succeeds hands its attempt back, as a right password
	// does.
	Throttle ThrottleConfig
}

// MaxRecoveryCodeLifespan bounds an admin-issued recovery code.
const MaxRecoveryCodeLifespan = 30 * 24 * time.Hour

// Throttle kinds of the code flows: each has counters of its own, apart
// from login's (a code request is never handed back, and must not use up a
// client's login allowance).
const (
	kindVerificationRequest = "verification request"
	kindRecoveryRequest     = "recovery request"
	kindLoginRequest        = "login code request"
	// kindCodeCheck counts checks of every kind of short code (verify,
	// recover, sign in) together: one address has one guessing budget.
	kindCodeCheck = "code check"
)

// codeKeys are the counters of a code flow attempt of kind about address
// (none when empty: a long code names no address) from client c: the
// address from anywhere, the client address, and the address from that
// client, as for login (see ThrottleConfig).
func (s *Service) codeKeys(kind, address string, c Client) throttleKeys {
	t := s.cfg.Codes.Throttle
	var k throttleKeys
	if address != "" {
		k.subjects = append(k.subjects, db.ThrottleKey{Key: kind + "\x00" + address, Free: t.FreePerIdentifier, Cap: t.IdentifierMax})
	}
	if c.IP != "" {
		group := addressGroup(c.IP)
		k.address = &db.ThrottleKey{Key: kind + " client\x00" + group, Free: t.FreePerAddress, Cap: t.Max}
		if address != "" {
			k.subjects = append(k.subjects, db.ThrottleKey{Key: kind + " from client\x00" + address + "\x00" + group, Free: t.FreePerIdentifier, Cap: t.Max})
		}
	}
	return k
}

// reserveCode charges a code flow attempt to keys.
func (s *Service) reserveCode(ctx context.Context, keys throttleKeys) error {
	return s.reserveIn(ctx, keys, s.cfg.Codes.Throttle.Window, sayCodeWait)
}

// sayCodeWait explains a refused request or check of a code.
func sayCodeWait(secs int) string {
	return fmt.Sprintf("too many codes asked for or tried: try again in %d second%s. They are counted per address "+
		"and per client address; past a few, each further one doubles the wait, and attempts refused meanwhile "+
		"do not count", secs, plural(secs))
}

// canonicalAddress is an address as typed in its stored form: an email
// address when it has an @, else a phone number (E.164), as the schema
// extension normalises addresses by channel.
func canonicalAddress(raw string) (string, error) {
	return canonicalAddressAt(raw, "/address", "the address ")
}

// canonicalAddressAt is canonicalAddress with its errors at path, their
// messages starting with what (a sign-in names the field identifier).
func canonicalAddressAt(raw, path, what string) (string, error) {
	format := "tel"
	if strings.Contains(raw, "@") {
		format = "email"
	}
	a, err := schemas.CanonicalIdentifier(raw, format)
	if err != nil {
		return "", &model.Error{Code: model.CodeValidationFailed, Path: path, Message: what + err.Error()}
	}
	if a == "" {
		return "", &model.Error{Code: model.CodeValidationFailed, Path: path, Message: "give an email address or a phone number (with + and the country code)"}
	}
	return a, nil
}

// RequestVerificationCode asks for a verification code to address, and
// RequestRecoveryCode for a recovery code (RequestLoginCode for a sign-in
// code works the same way). Both do the same work whatever
// the address: check its form, charge the throttle and record the request
// (one statement on PostgreSQL), and wake the loop that resolves requests
// (RunCodeRequests).
// Whether the address belongs to anyone is only looked at there, off the
// request path, so neither the answer nor its timing can tell.
func (s *Service) RequestVerificationCode(ctx context.Context, address string, c Client) error {
	return s.requestCode(ctx, db.PurposeVerification, kindVerificationRequest, address, c)
}

// RequestRecoveryCode: see RequestVerificationCode.
func (s *Service) RequestRecoveryCode(ctx context.Context, address string, c Client) error {
	return s.requestCode(ctx, db.PurposeRecovery, kindRecoveryRequest, address, c)
}

func (s *Service) requestCode(ctx context.Context, purpose, kind, raw string, c Client) error {
	address, err := canonicalAddress(raw)
	if err != nil {
		return err
	}
	return s.recordCodeRequest(ctx, purpose, kind, address, c)
}

// recordCodeRequest charges a request for a code of purpose to address (in
// its stored form) to the throttle, records it and wakes the loop.
func (s *Service) recordCodeRequest(ctx context.Context, purpose, kind, address string, c Client) error {
	now := s.clock()
	until, err := s.store.RecordCodeRequest(ctx, s.codeKeys(kind, address, c).all(), s.cfg.Codes.Throttle.Window,
		&db.CodeRequest{ID: uuid.Must(uuid.NewV7()), Purpose: purpose, Address: address, CreatedAt: now})
	if err != nil {
		return fmt.Errorf("record a code request: %w", err)
	}
	if err := tooMany(until, now, sayCodeWait); err != nil {
		return err
	}
	select {
	case s.wake <- struct{}{}:
	default: // the loop is awake already
	}
	return nil
}

// codeRequestBatch is how many requests one transaction resolves.
const codeRequestBatch = 100

// RunCodeRequests resolves recorded code requests until ctx ends: soon
// after this process records one, and every poll otherwise (requests
// recorded by other processes, or left by a crash). Several processes may
// run it on one PostgreSQL: each request is resolved once.
//
// A wake-up waits a random 20–100ms before resolving. The work done for an
// address that exists (a code, a message) is more than for one that does
// not; done the instant a request is answered it would compete with that
// request's last steps for the CPU and the database and show in its timing.
// Later, and by a random amount, it lands on nobody's request in
// particular; the requests that came meanwhile are resolved in one batch.
func (s *Service) RunCodeRequests(ctx context.Context, poll time.Duration, log *slog.Logger) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		n, err := s.ResolveCodeRequests(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("resolving code requests failed; retrying", "error", err)
		}
		if n == codeRequestBatch {
			continue // more are waiting
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
			select {
			case <-ctx.Done():
				return
			case <-time.After(20*time.Millisecond + rand.N(80*time.Millisecond)):
			}
		case <-t.C:
		}
	}
}

// ResolveCodeRequests resolves one batch of recorded code requests and
// returns how many it resolved.
func (s *Service) ResolveCodeRequests(ctx context.Context) (int, error) {
	return s.store.ResolveCodeRequests(ctx, codeRequestBatch, s.dispatch)
}

// dispatch decides what one code request sends: a verification code to
// each unverified address of an active identity it names, a recovery code
// to each recovery address it names, a login code to the address an
// identity signs in with by code (a disabled identity's too, for both:
// redeeming it is refused, and sending nothing would tell the two apart to
// whoever reads the mailbox). Nothing at all for an address nobody has.
func (s *Service) dispatch(req db.CodeRequest, targets []db.CodeTarget) *db.CodeDispatch {
	out := &db.CodeDispatch{}
	now := s.clock()
	var lifespan time.Duration
	switch req.Purpose {
	case db.PurposeRecovery:
		lifespan = s.cfg.Codes.RecoveryLifespan
	case db.PurposeLogin:
		lifespan = s.cfg.CodeLogin.Lifespan
	default:
		lifespan = s.cfg.Codes.VerificationLifespan
	}
	for _, t := range targets {
		if req.Purpose == db.PurposeVerification && (t.Verified || t.State != model.IdentityStateActive) {
			continue
		}
		target := code.Target{IdentityID: t.IdentityID, Via: t.Via, Address: t.Address}
		plain, row, err := s.codes.Short(req.Purpose, target, lifespan, now)
		if err != nil {
			slog.Error("making a code failed; the request is dropped", "purpose", req.Purpose, "error", err)
			continue
		}
		ident := &model.Identity{ID: t.IdentityID, SchemaID: t.SchemaID, State: t.State, Traits: t.Traits}
		msg, err := code.Message(s.courier, req.Purpose, target, plain, lifespan, ident, now)
		if err != nil {
			// A template that cannot render this message cannot render
			// it later either: retrying would only block the others.
			slog.Error("composing a code message failed; the request is dropped", "purpose", req.Purpose, "error", err)
			continue
		}
		out.Codes = append(out.Codes, row)
		out.Messages = append(out.Messages, msg)
	}
	return out
}

// VerifyAddress redeems a verification code for address: the address
// becomes verified. A wrong, used, expired or dead code is INVALID_CODE;
// checks are throttled per address and per client address, and each wrong
// one also counts against the address's live codes.
func (s *Service) VerifyAddress(ctx context.Context, rawAddress, typed string, c Client) (*model.VerifiableAddress, error) {
	address, err := canonicalAddress(rawAddress)
	if err != nil {
		return nil, err
	}
	keys := s.codeKeys(kindCodeCheck, address, c)
	if err := s.reserveCode(ctx, keys); err != nil {
		return nil, err
	}
	now := s.clock()
	found, err := s.codes.CheckShort(ctx, s.store, db.PurposeVerification, []string{address}, typed, now)
	if err != nil {
		return nil, err
	}
	a, err := s.store.VerifyAddress(ctx, found, now)
	if err != nil {
		return nil, err
	}
	s.settleOrLog(ctx, keys)
	return a, nil
}

// Recover redeems a recovery code (mailed to in.Address, or issued by an
// admin) or an invitation code, and signs its identity in with a fresh
// session. With a new password it also sets it (after the policy: a refused
// one leaves the code usable) and ends every other session of the identity,
// in the transaction that uses the code up. The address the code went to
// becomes verified. An INACTIVE identity is refused with ACCOUNT_DISABLED
// and its code stays unused.
func (s *Service) Recover(ctx context.Context, in *model.RecoverAccountInput, c Client) (*Issued, error) {
	var address string
	if in.Address != nil && strings.TrimSpace(*in.Address) != "" {
		a, err := canonicalAddress(*in.Address)
		if err != nil {
			return nil, err
		}
		address = a
	}
	long := code.IsLong(in.Code)
	if !long && address == "" {
		return nil, &model.Error{Code: model.CodeValidationFailed, Path: "/address",
			Message: "a code sent by email or SMS is redeemed with the address it was sent to"}
	}
	keys := s.codeKeys(kindCodeCheck, address, c)
	if err := s.reserveCode(ctx, keys); err != nil {
		return nil, err
	}
	now := s.clock()
	var found *db.Code
	var err error
	if long {
		found, err = s.codes.CheckLong(ctx, s.store, []string{db.PurposeRecovery, db.PurposeInvitation}, in.Code, now)
		if err == nil && address != "" && found.Address != address {
			err = code.ErrInvalid() // the code went elsewhere
		}
	} else {
		found, err = s.codes.CheckShort(ctx, s.store, db.PurposeRecovery, []string{address}, in.Code, now)
	}
	if err != nil {
		return nil, err
	}
	// The code was right: whatever stops the recovery now is not a guess,
	// so it gives the attempt back.
	refund := func(err error) error {
		if !found.Long {
			if rerr := s.store.RefundCodeAttempt(ctx, found.ID); rerr != nil {
				slog.WarnContext(ctx, "handing a code attempt back failed", "error", rerr)
			}
		}
		s.settleOrLog(ctx, keys)
		return err
	}
	rec := &db.Recovery{Code: found, Now: now}
	if in.NewPassword != nil {
		hash, err := s.identities.NewPasswordHash(ctx, found.IdentityID, *in.NewPassword, "/newPassword")
		if err != nil {
			return nil, refund(err)
		}
		rec.PasswordHash = &hash
	}
	issued, row, err := s.newSession(found.IdentityID, c, model.CredentialTypeCode)
	if err != nil {
		return nil, err
	}
	rec.Session = row
	if err := s.store.Recover(ctx, rec); err != nil {
		if len(model.UserErrors(err)) > 0 && model.ErrorCodeOf(err) != model.CodeInvalidCode {
			return nil, refund(err)
		}
		return nil, err
	}
	s.settleOrLog(ctx, keys)
	ident, err := s.identities.GetWith(ctx, found.IdentityID, 0)
	if err != nil {
		return nil, err
	}
	issued.Session.Identity = ident
	return issued, nil
}

// CreateRecoveryCode makes a long recovery code for an identity, for an
// admin to hand over, valid for expiresIn (a Go duration; the recovery
// lifespan when nil). It returns the code, shown once, and its expiry.
func (s *Service) CreateRecoveryCode(ctx context.Context, identityID uuid.UUID, expiresIn *string) (string, time.Time, error) {
	lifespan := s.cfg.Codes.RecoveryLifespan
	if expiresIn != nil {
		d, err := time.ParseDuration(strings.TrimSpace(*expiresIn))
		if err != nil || d < time.Minute || d > MaxRecoveryCodeLifespan {
			return "", time.Time{}, &model.Error{Code: model.CodeValidationFailed, Path: "/expiresIn",
				Message: fmt.Sprintf("expiresIn must be a duration from 1m to %s, such as 90m or 24h", "720h")}
		}
		lifespan = d
	}
	plain, row, err := s.codes.Long(db.PurposeRecovery, code.Target{IdentityID: identityID}, lifespan, s.clock())
	if err != nil {
		return "", time.Time{}, err
	}
	if err := s.store.IssueCode(ctx, row, nil); err != nil {
		return "", time.Time{}, err
	}
	return plain, row.ExpiresAt, nil
}

// PruneCodes deletes codes that expired or were used more than a day ago:
// kept that long, an admin can still see what happened; after, they only
// take room.
func (s *Service) PruneCodes(ctx context.Context) (int, error) {
	return s.store.PruneCodes(ctx, s.clock().Add(-24*time.Hour))
}
