package session

import (
	"context"

	"github.com/identityd/identityd/model"
)

// registerPasswordless registers an identity without a password when the
// code method is on, and sends it a sign-in code instead of a session.
func (s *Service) registerPasswordless(ctx context.Context, in *model.RegisterInput, c Client) (*Issued, error) {
	return nil, &model.Error{Code: model.CodePasswordPolicy, Path: "/password", Message: "a password is required"}
}

// RequestLoginCode sends a sign-in code to the address of identifier, the
// same answer whether or not an identity has it.
func (s *Service) RequestLoginCode(ctx context.Context, identifier string, c Client) error {
	return &model.Error{Code: model.CodeMethodDisabled, Message: "signing in with a code is switched off here (selfservice.methods.code.enabled)"}
}

// LoginWithCode signs in with a code from RequestLoginCode.
func (s *Service) LoginWithCode(ctx context.Context, in *model.LoginWithCodeInput, c Client) (*Issued, error) {
	return nil, &model.Error{Code: model.CodeMethodDisabled, Message: "signing in with a code is switched off here (selfservice.methods.code.enabled)"}
}
