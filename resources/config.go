package resources

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kailash-gateway/kgw/resources/httppool"
	"github.com/kailash-gateway/kgw/resources/postgres"
	"github.com/kailash-gateway/kgw/resources/redis"
)

// ErrUnknownType reports a resource spec whose type is missing or not one
// of TypeDatabase, TypeCache and TypeHTTPClient.
var ErrUnknownType = fmt.Errorf("%w: unknown resource type", ErrInvalidSpec)

// ParseConfig parses and checks the config of a resource of type typ
// (TypeDatabase, TypeCache or TypeHTTPClient) and returns it as its
// backend's config type (postgres.Config, redis.Config or
// httppool.Config). It is the one place a resource config is parsed: the
// server validates specs with it before storing them, and the broker
// plans with it. A missing or unknown type gives an error wrapping
// ErrUnknownType; a bad config the backend's error, which names keys and
// describes values (configs hold no credentials: those come from
// credentials_ref).
func ParseConfig(typ string, config map[string]any) (any, error) {
	var (
		c   any
		err error
	)
	switch typ {
	case TypeDatabase:
		c, err = postgres.ParseConfig(config)
	case TypeCache:
		c, err = redis.ParseConfig(config)
	case TypeHTTPClient:
		c, err = httppool.ParseConfig(config)
	case "":
		return nil, fmt.Errorf("type is missing (database, cache or http_client): %w", ErrUnknownType)
	default:
		return nil, fmt.Errorf("unknown type %q (want database, cache or http_client): %w", typ, ErrUnknownType)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// credentialKeys are config keys that only ever hold a credential. No
// config of any type reads them: a credential belongs in a secret.
var credentialKeys = map[string]bool{
	"password": true, "passwd": true, "pwd": true, "token": true, "api_key": true, "apikey": true,
	"access_token": true, "bearer": true, "basic": true, "dsn": true, "secret": true,
}

// SpecProblem is a resource spec mistake that no retry can fix, with the
// fix in its message. Key is the offending config key, or "" when the
// problem is the spec's credentials_ref.
type SpecProblem struct {
	Key     string
	Message string
}

// CheckCredentials finds the spec mistakes about credentials that make
// every use fail: a credential written in config (it must come from a
// secret), and http_client credentials without a base_url (they are only
// sent to its origin). It reads only keys and whether credentialsRef is
// set, never values.
func CheckCredentials(typ string, config map[string]any, credentialsRef string) []SpecProblem {
	var out []SpecProblem
	keys := make([]string, 0, len(config))
	for k := range config {
		if credentialKeys[strings.ToLower(k)] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = append(out, SpecProblem{k, fmt.Sprintf(
			"%q is a credential and config is not secret: store it in a secret (StoreSecret, kgw secrets put) and name that secret in credentials_ref", k)})
	}
	if typ == TypeHTTPClient && credentialsRef != "" {
		if u, _ := config["base_url"].(string); u == "" {
			out = append(out, SpecProblem{"base_url", "http_client credentials need a base_url: they are only sent to its origin; " +
				`add config.base_url (e.g. "https://api.example.com") and request relative paths, or drop credentials_ref`})
		}
	}
	return out
}
