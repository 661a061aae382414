package session

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/internal/code"
	"github.com/identityd/identityd/model"
)

// DefaultLoginCodeLifespan is how long a sign-in code lives when the
// config does not say (selfservice.methods.code.config.lifespan).
const DefaultLoginCodeLifespan = 15 * time.Minute

// CodeLoginConfig is signing in with a one-time code sent by email or SMS
// (passwordless), and registering without a password.
type CodeLoginConfig struct {
	// Enabled switches requestLoginCode, loginWithCode and passwordless
	// register on.
	Enabled bool
	// Lifespan is how long a sign-in code is valid
	// (DefaultLoginCodeLifespan when zero).
	Lifespan time.Duration
}

// errCodeLoginDisabled answers every code sign-in while the method is off.
func errCodeLoginDisabled() error {
	return &model.Error{Code: model.CodeMethodDisabled, Message: "signing in with a code is switched off here (selfservice.methods.code.enabled)"}
}

// registerPasswordless registers an identity without a password when the
// code method is on, and sends it a sign-in code instead of a session: the
// code goes out in the transaction that creates the identity, so it exists
// only if the identity does.
func (s *Service) registerPasswordless(ctx context.Context, in *model.RegisterInput, _ Client) (*Issued, error) {
	if !s.cfg.CodeLogin.Enabled {
		return nil, &model.Error{Code: model.CodePasswordPolicy, Path: "/password", Message: "a password is required"}
	}
	if _, err := s.identities.RegisterPasswordless(ctx, in.SchemaID, in.Traits, s.cfg.CodeLogin.Lifespan); err != nil {
		return nil, err
	}
	return &Issued{CodeSent: true}, nil
}

// RequestLoginCode sends a sign-in code to the address of identifier, the
// same answer whether or not an identity has it. It does what
// RequestVerificationCode does: check the identifier's form (an email
// address or a phone number, in the form addresses are stored), charge the
// throttle and record the request, whatever the address; the background
// loop (RunCodeRequests) looks the address up and, when an identity signs
// in with it (see db.LoginCodeAddress), queues the code, which replaces the
// address's older live ones.
func (s *Service) RequestLoginCode(ctx context.Context, identifier string, c Client) error {
	if !s.cfg.CodeLogin.Enabled {
		return errCodeLoginDisabled()
	}
	address, err := loginCodeAddress(identifier)
	if err != nil {
		return err
	}
	return s.recordCodeRequest(ctx, db.PurposeLogin, kindLoginRequest, address, c)
}

// loginCodeAddress is a sign-in identifier in the stored form of an
// address, or VALIDATION_FAILED at /identifier when it cannot be one (a
// username): a code goes to an email address or a phone number only.
func loginCodeAddress(identifier string) (string, error) {
	a, err := canonicalAddressAt(identifier, "/identifier", "the identifier ")
	if err != nil {
		return "", err
	}
	if !addressForm(a) {
		return "", &model.Error{Code: model.CodeValidationFailed, Path: "/identifier",
			Message: "a sign-in code goes to an email address or a phone number (with + and the country code), not to a username: give one of the account's addresses"}
	}
	return a, nil
}

// addressForm tells whether a canonical value has the form of an address:
// local@domain, or E.164 (a + and digits; a value that is neither stays
// as a username would).
func addressForm(a string) bool {
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return i > 0 && i < len(a)-1 && !strings.ContainsAny(a, " \t")
	}
	if len(a) < 3 || a[0] != '+' {
		return false
	}
	return strings.Trim(a[1:], "0123456789") == ""
}

// LoginWithCode signs in with a code from RequestLoginCode (or a
// passwordless Register): a first factor (AAL1, method CODE). Checks are
// throttled with the other code checks of the address and client, and each
// wrong one also counts against the address's live login codes. A wrong,
// used, expired or dead code, and an identifier no code can have gone to,
// are all INVALID_CODE. The address becomes verified, in the transaction
// that uses the code up and stores the session. An INACTIVE identity is
// refused with ACCOUNT_DISABLED, told only once the code matched, and its
// code stays unused.
//
// selfservice.flows.login.require_verified_address is satisfied by
// construction: the code proved the address it went to.
func (s *Service) LoginWithCode(ctx context.Context, in *model.LoginWithCodeInput, c Client) (*Issued, error) {
	if !s.cfg.CodeLogin.Enabled {
		return nil, errCodeLoginDisabled()
	}
	address, err := loginCodeAddress(in.Identifier)
	if err != nil {
		// Nothing is ever sent to what cannot be an address: no code of
		// it can be right.
		return nil, code.ErrInvalid()
	}
	keys := s.codeKeys(kindCodeCheck, address, c)
	if err := s.reserveCode(ctx, keys); err != nil {
		return nil, err
	}
	now := s.clock()
	found, err := s.codes.CheckShort(ctx, s.store, db.PurposeLogin, []string{address}, in.Code, now)
	if err != nil {
		return nil, err // a failed guess: it stays counted
	}
	issued, row, err := s.newSession(found.IdentityID, c, model.CredentialTypeCode)
	if err != nil {
		return nil, err
	}
	if err := s.store.SignInWithCode(ctx, &db.CodeSignIn{Code: found, Session: row, Now: now}); err != nil {
		if len(model.UserErrors(err)) > 0 && model.ErrorCodeOf(err) != model.CodeInvalidCode {
			// The code was right (ACCOUNT_DISABLED): not a guess, so the
			// attempt goes back, and the code works once the identity is
			// enabled again.
			if rerr := s.store.RefundCodeAttempt(ctx, found.ID); rerr != nil {
				slog.WarnContext(ctx, "handing a code attempt back failed", "error", rerr)
			}
			s.settleOrLog(ctx, keys)
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
