package access

import (
	"context"
	"crypto/x509"
	"strings"
)

// Credentials are what a call presented.
type Credentials struct {
	// Bearer is the token of an `authorization: Bearer …` header; "" when
	// there was none.
	Bearer string
	// BadAuthorization is set when an authorization header was present but
	// not of the form "Bearer <token>".
	BadAuthorization bool
	// ClientCert is the verified leaf certificate of an mTLS connection.
	ClientCert *x509.Certificate
	// Forwarded is the x-forwarded-client-cert header, when the listener
	// trusts it (--trust-forwarded-client-cert).
	Forwarded string
}

// An Authenticator turns credentials into a Principal with roles. Its
// fields are set once before use; it is then safe for concurrent use.
type Authenticator struct {
	Keys     *Keys
	JWT      *JWTVerifier // nil: JWTs are refused
	Bindings *Bindings
}

// Authenticate returns the caller's principal, its roles those of its key
// or token plus those its role bindings give. A bearer token wins over a
// client certificate (the certificate still secured the connection).
// Failures are *AuthError.
func (a *Authenticator) Authenticate(ctx context.Context, c Credentials) (*Principal, error) {
	var (
		p   *Principal
		err error
	)
	switch {
	case c.BadAuthorization:
		return nil, authErr(ReasonMalformed, `malformed authorization header: want "Bearer <token>"`)
	case c.Bearer != "" && LooksLikeKey(c.Bearer):
		p, err = a.Keys.Authenticate(ctx, c.Bearer)
	case c.Bearer != "":
		if a.JWT == nil {
			return nil, authErr(ReasonJWTDisabled, "bearer token is neither an API key nor accepted here: JWT authentication is not configured")
		}
		p, err = a.JWT.Verify(ctx, c.Bearer)
	case c.ClientCert != nil:
		p, err = CertPrincipal(c.ClientCert)
	case c.Forwarded != "":
		p, err = ForwardedPrincipal(c.Forwarded)
	default:
		return nil, authErr(ReasonMissing, "authentication required: send an API key or JWT as \"authorization: Bearer …\", or a client certificate")
	}
	if err != nil {
		return nil, err
	}
	extra, err := a.Bindings.RolesFor(ctx, p.Name)
	if err != nil {
		return nil, authErr(ReasonInternal, "cannot read role bindings now; retry")
	}
	return p.withRoles(extra), nil
}

// RolesOf returns the roles the principal name has now without presenting
// credentials: its API key's roles (for key:<id>) and its role bindings.
// Roles that came from a JWT claim are not known here. Used when an
// execution resumes after a restart.
func (a *Authenticator) RolesOf(ctx context.Context, name string) (*Principal, error) {
	p := &Principal{Name: name}
	if id, ok := strings.CutPrefix(name, "key:"); ok {
		roles, err := a.Keys.RolesOf(ctx, id)
		if err != nil {
			return nil, err
		}
		if roles == nil {
			return p, nil // revoked or expired: no roles at all
		}
		p = p.withRoles(roles)
	}
	extra, err := a.Bindings.RolesFor(ctx, name)
	if err != nil {
		return nil, err
	}
	return p.withRoles(extra), nil
}
