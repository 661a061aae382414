package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/identityd/identityd/model"
)

// errorPresenter maps an error to what a client sees, once, at the edge. An
// application error shows its code and safe message; anything else is an
// internal failure: logged with the request id, shown only as that id.
func errorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		var gqlErr *gqlerror.Error
		if errors.As(err, &gqlErr) && gqlErr.Err == nil {
			// Parse, validation and input errors made by gqlgen itself: safe.
			return gqlErr
		}
		gerr := graphql.DefaultErrorPresenter(ctx, err)
		var appErr *model.Error
		if errors.As(err, &appErr) {
			gerr.Message = appErr.Message
			setCode(gerr, appErr.Code)
			if appErr.Path != "" {
				gerr.Extensions["field"] = appErr.Path
			}
			if appErr.RetryAfter > 0 {
				// Whole seconds, rounded up: retrying on time must succeed.
				gerr.Extensions["retryAfterSeconds"] = int((appErr.RetryAfter + time.Second - 1) / time.Second)
			}
			return gerr
		}
		if code, ok := inputErrorCode(gerr); ok {
			setCode(gerr, code)
			return gerr
		}
		id := RequestID(ctx)
		log.ErrorContext(ctx, "graphql resolver failed", "request_id", id, "path", gerr.Path.String(), "error", err)
		return &gqlerror.Error{
			Message:    fmt.Sprintf("internal error (request id %s)", id),
			Path:       gerr.Path,
			Locations:  gerr.Locations,
			Extensions: map[string]any{"code": string(model.CodeInternal), "requestId": id},
		}
	}
}

// inputErrorCode recognises errors gqlgen raises while decoding arguments
// (a bad UUID, a JSON value that is not JSON): they are the client's fault.
func inputErrorCode(gerr *gqlerror.Error) (model.ErrorCode, bool) {
	if c, ok := gerr.Extensions["code"].(string); ok && c != "" {
		return model.ErrorCode(c), true
	}
	return "", false
}

func setCode(gerr *gqlerror.Error, code model.ErrorCode) {
	if gerr.Extensions == nil {
		gerr.Extensions = map[string]any{}
	}
	gerr.Extensions["code"] = string(code)
}

// recoverFunc turns a panic in a resolver into an internal error without
// showing the panic value; the stack goes to the log.
func recoverFunc(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		id := RequestID(ctx)
		log.ErrorContext(ctx, "graphql resolver panicked", "request_id", id, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return fmt.Errorf("panic: %v", p)
	}
}

// payloadErrors splits a service error for a mutation payload: problems with
// the input become userErrors (and a nil error); anything else (no access, an
// unavailable database, an internal failure) stays a top-level error.
func payloadErrors(err error) ([]*model.UserError, error) {
	if err == nil {
		return []*model.UserError{}, nil
	}
	errs := model.UserErrors(err)
	if len(errs) == 0 {
		return nil, err
	}
	out := make([]*model.UserError, 0, len(errs))
	for _, e := range errs {
		switch e.Code {
		case model.CodeUnauthenticated, model.CodeForbidden, model.CodeInternal, model.CodeUnavailable, model.CodeBadUserInput, model.CodeTooManyAttempts,
			model.CodeSessionAAL2Required:
			return nil, err
		}
		ue := &model.UserError{Code: string(e.Code), Message: e.Message}
		if e.Path != "" {
			p := e.Path
			ue.Path = &p
		}
		out = append(out, ue)
	}
	return out, nil
}
