package model

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrorCode classifies an Error. The codes are part of the public API: they
// reach clients as UserError.code or as a top-level error's extensions.code.
type ErrorCode string

// Codes that clients see in userErrors.
const (
	CodeValidationFailed   ErrorCode = "VALIDATION_FAILED"
	CodeSchemaNotFound     ErrorCode = "SCHEMA_NOT_FOUND"
	CodeIdentifierTaken    ErrorCode = "IDENTIFIER_TAKEN"
	CodeInvalidCredentials ErrorCode = "INVALID_CREDENTIALS"
	CodeAccountDisabled    ErrorCode = "ACCOUNT_DISABLED"
	CodePasswordPolicy     ErrorCode = "PASSWORD_POLICY"
	CodeNotFound           ErrorCode = "NOT_FOUND"
	CodeInvalidPatch       ErrorCode = "INVALID_PATCH"
	// CodeReauthenticationRequired refuses a change that needs a recent
	// sign-in (a login identifier, an address), so that a stolen old session
	// cannot take the account over.
	CodeReauthenticationRequired ErrorCode = "REAUTHENTICATION_REQUIRED"
	// CodeInvalidCode answers a one-time code that is wrong, used, expired
	// or dead from too many wrong tries: one code for all, so that a guess
	// never learns which.
	CodeInvalidCode ErrorCode = "INVALID_CODE"
	// CodeAddressNotVerified refuses a login when
	// selfservice.flows.login.require_verified_address is on and the
	// identity has no verified address.
	CodeAddressNotVerified ErrorCode = "ADDRESS_NOT_VERIFIED"
	// CodeConflict refuses to create what exists already (a second TOTP
	// app): remove the old one first.
	CodeConflict ErrorCode = "CONFLICT"
	// CodeMethodDisabled refuses a method switched off in
	// selfservice.methods.
	CodeMethodDisabled ErrorCode = "METHOD_DISABLED"
)

// Codes that clients see as top-level GraphQL errors (extensions.code).
const (
	CodeUnauthenticated ErrorCode = "UNAUTHENTICATED"
	CodeForbidden       ErrorCode = "FORBIDDEN"
	CodeBadUserInput    ErrorCode = "BAD_USER_INPUT"
	CodeTooManyAttempts ErrorCode = "TOO_MANY_ATTEMPTS"
	// CodeSessionAAL2Required refuses a session that has not used the
	// identity's second factor yet (session.whoami.required_aal).
	CodeSessionAAL2Required ErrorCode = "SESSION_AAL2_REQUIRED"
	CodeUnavailable         ErrorCode = "UNAVAILABLE"
	CodeInternal            ErrorCode = "INTERNAL_SERVER_ERROR"
)

// Error is the application's one error type. Code and Message are safe to show
// to a client; Path is a JSON pointer into the caller's input (for example
// "/traits/email"). Internal causes are never part of Message: wrap them with
// fmt.Errorf and they surface only as CodeInternal, logged, never shown.
type Error struct {
	Code    ErrorCode
	Message string
	Path    string
	// RetryAfter, when positive, says how long to wait before trying again
	// (TOO_MANY_ATTEMPTS); clients see it as extensions.retryAfterSeconds.
	RetryAfter time.Duration
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Path != "" {
		return fmt.Sprintf("%s: %s (at %s)", e.Code, e.Message, e.Path)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns an Error with a formatted, client-safe message.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AtPath returns a copy of e that points at path.
func (e *Error) AtPath(path string) *Error {
	c := *e
	c.Path = path
	return &c
}

// Errors is several application errors reported together, for example every
// schema violation of one input. It is never empty when returned as an error.
type Errors []*Error

// Error implements the error interface.
func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// Unwrap lets errors.As and errors.Is see each error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// ErrorCodeOf returns the code of the first application error in err's chain,
// or CodeInternal when there is none (an unexpected failure).
func ErrorCodeOf(err error) ErrorCode {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// UserErrors returns the application errors in err, or nil when err holds
// none: an internal failure is not a user error and must be handled as such.
func UserErrors(err error) []*Error {
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	var e *Error
	if errors.As(err, &e) {
		return []*Error{e}
	}
	return nil
}
