package kgw

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	kgwv1 "github.com/kailash-gateway/kgw/gen/go/kgw/v1"
)

// A Spec describes a resource: DatabaseSpec, CacheSpec, HTTPClientSpec,
// Ref, or Raw for a hand-built message. Credentials never travel in a
// spec: CredentialsRef names a secret stored with StoreSecret, which the
// gateway merges in itself.
type Spec interface {
	// ResourceSpec returns the message for the spec.
	ResourceSpec() (*ResourceSpec, error)
}

// credentialKeys may not appear in a config: they belong in a secret.
var credentialKeys = []string{"password", "token", "api_key", "dsn"}

// buildSpec assembles a spec of kind typ from the typed keys base (zero
// values are left out so the gateway's defaults apply) and the free-form
// extra keys, which win.
func buildSpec(typ string, base, extra map[string]any, credentialsRef, credentialsKey string) (*ResourceSpec, error) {
	cfg := map[string]any{}
	for k, v := range base {
		switch v := v.(type) {
		case string:
			if v == "" {
				continue
			}
		case int:
			if v == 0 {
				continue
			}
		case float64:
			if v == 0 {
				continue
			}
		case bool:
			if !v {
				continue
			}
		case map[string]any:
			if len(v) == 0 {
				continue
			}
		}
		cfg[k] = v
	}
	for _, k := range credentialKeys {
		if _, ok := extra[k]; ok {
			return nil, fmt.Errorf("%s config: %q is a credential: store it with StoreSecret and set CredentialsRef", typ, k)
		}
	}
	for k, v := range extra {
		cfg[k] = v
	}
	s, err := structpb.NewStruct(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s config: %w", typ, err)
	}
	return &kgwv1.ResourceSpec{Type: typ, Config: s, CredentialsRef: credentialsRef, CredentialsKey: credentialsKey}, nil
}

func seconds(d time.Duration) float64 { return d.Seconds() }

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// DatabaseSpec describes a PostgreSQL database ("database"). Zero fields
// take the gateway's defaults (host localhost, port 5432, max_size 10, …).
type DatabaseSpec struct {
	Host     string
	Port     int
	Database string
	// User may also come from the secret (user or username).
	User    string
	SSLMode string
	MinSize int
	MaxSize int
	// Timeout bounds connecting and acquiring a connection.
	Timeout time.Duration
	// CommandTimeout is the statement timeout.
	CommandTimeout time.Duration
	// ServerSettings are runtime parameters, e.g. application_name.
	ServerSettings map[string]string
	// CredentialsRef names the secret with user/username and password.
	CredentialsRef string
	// Config holds further config keys; they override the fields above.
	Config map[string]any
}

// ResourceSpec implements Spec.
func (s DatabaseSpec) ResourceSpec() (*ResourceSpec, error) {
	return buildSpec("database", map[string]any{
		"host": s.Host, "port": s.Port, "database": s.Database, "user": s.User, "sslmode": s.SSLMode,
		"min_size": s.MinSize, "max_size": s.MaxSize,
		"timeout": seconds(s.Timeout), "command_timeout": seconds(s.CommandTimeout),
		"server_settings": stringMap(s.ServerSettings),
	}, s.Config, s.CredentialsRef, "")
}

// CacheSpec describes a Redis cache ("cache"). Zero fields take the
// gateway's defaults (host localhost, port 6379, db 0).
type CacheSpec struct {
	Host string
	Port int
	DB   int
	TLS  bool
	// CredentialsRef names the secret with username and password.
	CredentialsRef string
	// Config holds further config keys; they override the fields above.
	Config map[string]any
}

// ResourceSpec implements Spec.
func (s CacheSpec) ResourceSpec() (*ResourceSpec, error) {
	return buildSpec("cache", map[string]any{
		"host": s.Host, "port": s.Port, "db": s.DB, "tls": s.TLS,
	}, s.Config, s.CredentialsRef, "")
}

// HTTPClientSpec describes an HTTP API ("http_client"). Credentials from the
// secret (token, api_key, basic, headers) are sent only to BaseURL's origin.
type HTTPClientSpec struct {
	BaseURL string
	// Timeout bounds one request (default 30 s).
	Timeout          time.Duration
	Headers          map[string]string
	ConnectionLimit  int
	MaxResponseBytes int
	// CredentialsRef names the secret; CredentialsKey picks one key of a
	// multi-key secret.
	CredentialsRef string
	CredentialsKey string
	// Config holds further config keys; they override the fields above.
	Config map[string]any
}

// ResourceSpec implements Spec.
func (s HTTPClientSpec) ResourceSpec() (*ResourceSpec, error) {
	return buildSpec("http_client", map[string]any{
		"base_url": s.BaseURL, "timeout": seconds(s.Timeout), "headers": stringMap(s.Headers),
		"connection_limit": s.ConnectionLimit, "max_response_bytes": s.MaxResponseBytes,
	}, s.Config, s.CredentialsRef, s.CredentialsKey)
}

// Ref names a server-side named resource stored with PutResource:
// kgw.Resource("orders", kgw.Ref("orders_db")).
type Ref string

// ResourceSpec implements Spec.
func (r Ref) ResourceSpec() (*ResourceSpec, error) {
	if r == "" {
		return nil, errors.New("empty resource ref")
	}
	return &kgwv1.ResourceSpec{Ref: string(r)}, nil
}

// Raw wraps a hand-built message as a Spec.
func Raw(spec *ResourceSpec) Spec { return rawSpec{spec} }

type rawSpec struct{ p *kgwv1.ResourceSpec }

func (r rawSpec) ResourceSpec() (*ResourceSpec, error) {
	if r.p == nil {
		return nil, errors.New("nil resource spec")
	}
	return r.p, nil
}

// PutResource creates or replaces the named resource name, so that requests
// can say Ref(name) instead of choosing hosts and secrets themselves.
// allowedCallers are the callers that may use it besides its creator and
// admins: principal patterns or "role:<name>" (none: creator and admins
// only).
func (c *Client) PutResource(ctx context.Context, name string, spec Spec, allowedCallers ...string) (*NamedResource, error) {
	p, err := spec.ResourceSpec()
	if err != nil {
		return nil, optionError("PutResource", err)
	}
	resp, err := c.resources.PutResource(ctx, &kgwv1.PutResourceRequest{Name: name, Spec: p, AllowedCallers: allowedCallers})
	if err != nil {
		return nil, rpcError(ctx, "PutResource", err)
	}
	return resp.GetResource(), nil
}

// GetResource returns the named resource name. An unknown name gives an
// error matching ErrResourceNotFound.
func (c *Client) GetResource(ctx context.Context, name string) (*NamedResource, error) {
	resp, err := c.resources.GetResource(ctx, &kgwv1.GetResourceRequest{Name: name})
	if err != nil {
		return nil, rpcError(ctx, "GetResource", err)
	}
	return resp.GetResource(), nil
}

// ListResources yields every named resource, ordered by name.
func (c *Client) ListResources(ctx context.Context) iter.Seq2[*NamedResource, error] {
	return pages(ctx, "ListResources", func(token string) ([]*kgwv1.Resource, string, error) {
		resp, err := c.resources.ListResources(ctx, &kgwv1.ListResourcesRequest{PageToken: token})
		return resp.GetResources(), resp.GetNextPageToken(), err
	})
}

// DeleteResource removes the named resource name; its pools drain and close.
func (c *Client) DeleteResource(ctx context.Context, name string) error {
	_, err := c.resources.DeleteResource(ctx, &kgwv1.DeleteResourceRequest{Name: name})
	return rpcError(ctx, "DeleteResource", err)
}

// ListPools yields the live connection pools (without credentials).
func (c *Client) ListPools(ctx context.Context) iter.Seq2[*Pool, error] {
	return pages(ctx, "ListPools", func(token string) ([]*kgwv1.Pool, string, error) {
		resp, err := c.resources.ListPools(ctx, &kgwv1.ListPoolsRequest{PageToken: token})
		return resp.GetPools(), resp.GetNextPageToken(), err
	})
}

// A CheckResult is the outcome of CheckResource.
type CheckResult struct {
	// Healthy is true when a connection and a ping succeeded.
	Healthy bool
	// Message says why it is unhealthy, or confirms it is healthy.
	Message string
	// Latency is the time the check took.
	Latency time.Duration
}

// CheckResource connects with spec and reports whether the resource is
// healthy. A Ref checks the named resource. An unhealthy resource is a
// result, not an error.
func (c *Client) CheckResource(ctx context.Context, spec Spec) (*CheckResult, error) {
	req := &kgwv1.CheckResourceRequest{}
	if r, ok := spec.(Ref); ok {
		req.Target = &kgwv1.CheckResourceRequest_Name{Name: string(r)}
	} else {
		p, err := spec.ResourceSpec()
		if err != nil {
			return nil, optionError("CheckResource", err)
		}
		req.Target = &kgwv1.CheckResourceRequest_Spec{Spec: p}
	}
	resp, err := c.resources.CheckResource(ctx, req)
	if err != nil {
		return nil, rpcError(ctx, "CheckResource", err)
	}
	return &CheckResult{Healthy: resp.GetHealthy(), Message: resp.GetMessage(), Latency: durationOf(resp.GetLatency())}, nil
}
