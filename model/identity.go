package model

import (
	"time"

	"github.com/google/uuid"
)

// DB values of IdentityState, as Kratos writes them in JSON ("active",
// "inactive"); the GraphQL enum is upper case.
const (
	StateActiveJSON   = "active"
	StateInactiveJSON = "inactive"
)

// Identity is a person, service or device that signs up or authenticates. It
// carries no secret: password hashes live only in storage and are compared
// there, so no code path can hand one to a client by mistake.
type Identity struct {
	ID uuid.UUID
	// ExternalID is the identity's id in another system (Kratos's
	// external_id); nil when unset.
	ExternalID     *string
	SchemaID       string
	State          IdentityState
	StateChangedAt *time.Time
	// Traits are validated against the identity's schema on every write.
	Traits JSON
	// MetadataPublic is admin-writable and visible to the owner; nil is null.
	MetadataPublic JSON
	// MetadataAdmin is admin-only; the GraphQL layer guards it with @access.
	MetadataAdmin JSON
	// AvailableAAL is the highest level its credentials reach: AAL2 with a
	// second factor. Kept on the identity's row, so that the session read
	// knows, without another query, whether the session must reach AAL2.
	AvailableAAL        AuthenticatorAssuranceLevel
	Credentials         []*Credential
	VerifiableAddresses []*VerifiableAddress
	RecoveryAddresses   []*RecoveryAddress
	CreatedAt           time.Time
	UpdatedAt           time.Time
	// Loaded tells which of Credentials and the addresses came with the
	// identity; the others are empty here and fetched on demand.
	Loaded Relations
}

// Relations is a set of the records an identity owns apart from its own
// row: credentials, verifiable and recovery addresses. Each costs the
// database work to read, so a reader names the ones its answer will show
// (an identity(id) that asks for none is one indexed read) and the rest load
// on demand.
type Relations uint8

// The relations of an identity.
const (
	RelationCredentials Relations = 1 << iota
	RelationVerifiableAddresses
	RelationRecoveryAddresses

	// AllRelations is every relation.
	AllRelations = RelationCredentials | RelationVerifiableAddresses | RelationRecoveryAddresses
)

// Has reports whether every relation of x is in r.
func (r Relations) Has(x Relations) bool { return r&x == x }

// Credential is a way to sign in and the identifiers it accepts. Its secret
// part (a hash, a TOTP seed…) is deliberately not a field.
type Credential struct {
	Type        CredentialType
	Identifiers []string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// VerifiableAddress is an address (email, phone) that the identity can prove
// it controls, derived from the schema's verification marks.
type VerifiableAddress struct {
	ID         uuid.UUID
	Value      string
	Via        string
	Verified   bool
	Status     string
	VerifiedAt *time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Verification statuses, as Kratos names them.
const (
	VerificationPending   = "pending"
	VerificationSent      = "sent"
	VerificationCompleted = "completed"
)

// RecoveryAddress is an address that can recover the account, derived from
// the schema's recovery marks.
type RecoveryAddress struct {
	ID        uuid.UUID
	Value     string
	Via       string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Session is an authenticated session of an identity. The token that proves
// it is not a field: storage keeps only its SHA-256 hash.
type Session struct {
	ID              uuid.UUID
	IdentityID      uuid.UUID
	Active          bool
	IssuedAt        time.Time
	ExpiresAt       time.Time
	AuthenticatedAt time.Time
	// AAL is how strongly the identity proved itself in this session.
	AAL AuthenticatorAssuranceLevel
	// AuthenticationMethods are how the identity proved itself, oldest first.
	AuthenticationMethods []*AuthenticationMethod
	// IPAddress and UserAgent are the client's at login, for the owner to
	// recognise their sessions.
	IPAddress string
	UserAgent string
	Identity  *Identity
}

// AuthenticationMethod is one step of a sign-in: stored as Kratos stores it
// ({"method":"password","aal":"aal1","completed_at":…}).
type AuthenticationMethod struct {
	Method      CredentialType
	AAL         AuthenticatorAssuranceLevel
	CompletedAt time.Time
}

// NeedsAAL2 reports whether the session has not reached the level its
// identity can: the identity has a second factor the session has not used.
func (s *Session) NeedsAAL2() bool {
	return s.AAL != AuthenticatorAssuranceLevelAal2 && s.Identity != nil &&
		s.Identity.AvailableAAL == AuthenticatorAssuranceLevelAal2
}

// IdentitySchema is a configured identity schema as frontends see it.
type IdentitySchema struct {
	ID     string
	Schema JSON
}
