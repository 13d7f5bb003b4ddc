package access

import "errors"

// ErrUnauthenticated is what every *AuthError satisfies with errors.Is.
var ErrUnauthenticated = errors.New("unauthenticated")

// Reasons of authentication failures: the `reason` label of
// kgw_auth_failures_total and of the audit log line.
const (
	ReasonMissing       = "missing_credentials"
	ReasonMalformed     = "malformed_credentials"
	ReasonUnknownKey    = "unknown_key"
	ReasonWrongKey      = "wrong_key"
	ReasonExpired       = "expired"
	ReasonInvalidToken  = "invalid_token"
	ReasonJWTDisabled   = "jwt_not_configured"
	ReasonBadClientCert = "bad_client_certificate"
	ReasonInternal      = "internal"
)

// An AuthError is a failed authentication. Its message is safe to show the
// caller and to log: it never contains a key, a token or a secret.
type AuthError struct {
	Reason string
	Msg    string
}

func (e *AuthError) Error() string { return e.Msg }

// Is makes errors.Is(err, ErrUnauthenticated) hold.
func (e *AuthError) Is(target error) bool { return target == ErrUnauthenticated }

func authErr(reason, msg string) *AuthError { return &AuthError{Reason: reason, Msg: msg} }
