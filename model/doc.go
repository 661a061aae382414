// Package model is the shared vocabulary of the service: domain types with no
// storage tags and no secrets, the one application error type, and the caller
// carried in a request's context. It imports nothing of the service's own.
package model
