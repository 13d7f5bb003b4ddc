package resources

import (
	"fmt"

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
