package identity

import (
	"context"
	"errors"
	"time"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/internal/code"
	"github.com/identityd/identityd/internal/courier"
	"github.com/identityd/identityd/model"
)

// Mail is what identity writes need to send codes with them: verification
// codes for addresses (register, the owner's new addresses, an admin's
// sendVerification) and invitations.
type Mail struct {
	Codes   *code.Codes
	Courier *courier.Courier
	// VerificationLifespan is how long a verification code is valid.
	VerificationLifespan time.Duration
	// InvitationLifespan is how long an invitation code is valid.
	InvitationLifespan time.Duration
}

// SendCodesWith makes writes queue codes; call it once, before the service
// is used. Without it nothing is ever sent (and Invite fails).
func (s *Service) SendCodesWith(m Mail) { s.mail = m }

// attachVerification adds to w a verification code, and the message that
// carries it, for each of its verifiable addresses that want says should get
// one, and marks those addresses sent. The codes and messages are stored in
// the write's transaction: they exist only if the write does.
func (s *Service) attachVerification(w *db.IdentityWrite, want func(db.Address) bool) error {
	if s.mail.Codes == nil {
		return nil
	}
	now := s.clock()
	for i := range w.VerifiableAddresses {
		a := &w.VerifiableAddresses[i]
		if !want(*a) {
			continue
		}
		t := code.Target{IdentityID: w.Identity.ID, Via: a.Via, Address: a.Value}
		plain, row, err := s.mail.Codes.Short(db.PurposeVerification, t, s.mail.VerificationLifespan, now)
		if err != nil {
			return err
		}
		msg, err := code.Message(s.mail.Courier, db.PurposeVerification, t, plain, s.mail.VerificationLifespan, w.Identity, now)
		if err != nil {
			return err
		}
		a.CodeSent = true
		w.Codes = append(w.Codes, row)
		w.Messages = append(w.Messages, msg)
	}
	return nil
}

// every is attachVerification's choice for a new identity: every address.
func every(db.Address) bool { return true }

// addressesOf tells which of addrs an identity holds, by channel and value,
// and which of those are verified.
func addressesOf(addrs []*model.VerifiableAddress) (held, verified map[[2]string]bool) {
	held, verified = map[[2]string]bool{}, map[[2]string]bool{}
	for _, a := range addrs {
		k := [2]string{a.Via, a.Value}
		held[k] = true
		verified[k] = a.Verified
	}
	return held, verified
}

// Invite creates an identity as Create does and, in the same transaction,
// queues an invitation to its first recovery address (in the traits' order)
// with a long one-time code, valid Mail.InvitationLifespan, that the person
// redeems with a recovery and a new password. Traits without a recovery
// address are VALIDATION_FAILED at /traits: there is nobody to invite.
func (s *Service) Invite(ctx context.Context, in *model.CreateIdentityInput) (*model.Identity, error) {
	if s.mail.Codes == nil {
		return nil, errors.New("invitations need the code service")
	}
	w, err := s.prepareCreate(ctx, in)
	if err != nil {
		return nil, err
	}
	if err := s.verifyNew(w, in); err != nil {
		return nil, err
	}
	if len(w.RecoveryAddresses) == 0 {
		return nil, &model.Error{Code: model.CodeValidationFailed, Path: "/traits",
			Message: "no trait is a recovery address, so there is nobody to send the invitation to: the schema must mark one (\"ory.sh/kratos\": {\"recovery\": {\"via\": \"email\"}}) and the traits must set it"}
	}
	a := w.RecoveryAddresses[0]
	t := code.Target{IdentityID: w.Identity.ID, Via: a.Via, Address: a.Value}
	now := s.clock()
	plain, row, err := s.mail.Codes.Long(db.PurposeInvitation, t, s.mail.InvitationLifespan, now)
	if err != nil {
		return nil, err
	}
	msg, err := code.Message(s.mail.Courier, db.PurposeInvitation, t, plain, s.mail.InvitationLifespan, w.Identity, now)
	if err != nil {
		return nil, err
	}
	w.Codes = append(w.Codes, row)
	w.Messages = append(w.Messages, msg)
	s.addEvent(ctx, w, model.EventIdentityCreated, false)
	return s.store.CreateIdentity(ctx, w)
}
