// Package httppool is the http_client resource: an HTTP transport (a pool
// of keep-alive connections) shared by every execution that uses the same
// config and secret version, and the Starlark handle ("http_client")
// through which node code sends requests.
//
// Credentials are attached by the transport, per request and per redirect
// hop, and only when the request goes to the origin of base_url; a request
// to any other origin carries none of them.
package httppool

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/kailash-gateway/kgw/resources/internal/confmap"
)

// Config is an http_client resource's configuration with defaults applied.
// The credential headers merged from a secret are kept unexported.
type Config struct {
	BaseURL          string            `json:"base_url"`
	Timeout          time.Duration     `json:"timeout"`
	Headers          map[string]string `json:"headers,omitempty"`
	ConnectionLimit  int               `json:"connection_limit"`
	KeepaliveTimeout time.Duration     `json:"keepalive_timeout"`
	MaxResponseBytes int64             `json:"max_response_bytes"`

	base  *url.URL
	creds http.Header
}

// Defaults of the http_client config keys.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultConnectionLimit  = 100
	DefaultKeepaliveTimeout = 30 * time.Second
	DefaultMaxResponseBytes = 10 << 20
)

// ParseConfig reads an http_client config map, applies the defaults and
// checks every key. Unknown keys are errors.
func ParseConfig(m map[string]any) (Config, error) {
	r := confmap.New("http_client config", m)
	c := Config{
		BaseURL:          r.String("base_url", ""),
		Timeout:          r.Seconds("timeout", DefaultTimeout),
		Headers:          r.StringMap("headers"),
		ConnectionLimit:  r.Int("connection_limit", DefaultConnectionLimit),
		KeepaliveTimeout: r.Seconds("keepalive_timeout", DefaultKeepaliveTimeout),
		MaxResponseBytes: int64(r.Int("max_response_bytes", DefaultMaxResponseBytes)),
	}
	if err := r.Err(true); err != nil {
		return Config{}, err
	}
	switch {
	case c.Timeout <= 0:
		return Config{}, errors.New("http_client config: timeout must be positive")
	case c.ConnectionLimit < 1 || c.ConnectionLimit > 10000:
		return Config{}, errors.New("http_client config: connection_limit must be between 1 and 10000")
	case c.MaxResponseBytes < 1:
		return Config{}, errors.New("http_client config: max_response_bytes must be positive")
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Config{}, errors.New("http_client config: base_url must be an absolute http or https URL")
		}
		if u.User != nil {
			return Config{}, errors.New("http_client config: base_url must not carry user info; use credentials_ref")
		}
		u.Fragment, u.RawFragment = "", ""
		c.BaseURL = u.String()
		c.base = u
	}
	return c, nil
}

// MergeCredentials turns a secret into the credential headers sent to the
// origin of base_url: token or api_key → "Authorization: Bearer …"; basic
// {user, password} → Basic auth; headers {name: value} → those headers.
// A secret with none of those keys holds several credentials: key (the
// spec's credentials_key) picks one, else the key whose name appears in
// the base_url host; the picked value is a token string or a map of the
// keys above. Errors never contain values.
func (c *Config) MergeCredentials(values map[string]any, key string) error {
	if c.base == nil {
		return errors.New("http_client credentials need a base_url: credentials are only sent to its origin")
	}
	picked, err := c.pick(values, key)
	if err != nil {
		return err
	}
	h := http.Header{}
	r := confmap.New("http_client credentials", picked)
	token := r.String("token", "")
	if t := r.String("api_key", ""); t != "" && token == "" {
		token = t
	}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	if basic := r.Map("basic"); basic != nil {
		br := confmap.New("http_client credentials basic", basic)
		user := br.String("user", "")
		if u := br.String("username", ""); u != "" {
			user = u
		}
		pass := br.String("password", "")
		if err := br.Err(false); err != nil {
			return err
		}
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	}
	for k, v := range r.StringMap("headers") {
		h.Set(k, v)
	}
	if err := r.Err(false); err != nil {
		return err
	}
	if len(h) == 0 {
		return errors.New("http_client credentials: the secret has none of token, api_key, basic or headers")
	}
	c.creds = h
	return nil
}

var credentialKeys = []string{"token", "api_key", "basic", "headers"}

func (c *Config) pick(values map[string]any, key string) (map[string]any, error) {
	if key == "" {
		for _, k := range credentialKeys {
			if _, ok := values[k]; ok {
				return values, nil
			}
		}
		if len(values) == 1 {
			for k := range values {
				key = k
			}
		} else {
			host := strings.ToLower(c.base.Hostname())
			var matches []string
			for k := range values {
				if k != "" && strings.Contains(host, strings.ToLower(k)) {
					matches = append(matches, k)
				}
			}
			if len(matches) != 1 {
				keys := make([]string, 0, len(values))
				for k := range values {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				return nil, fmt.Errorf("http_client credentials: the secret has several keys (%s) and none named after host %q; set credentials_key",
					strings.Join(keys, ", "), host)
			}
			key = matches[0]
		}
	}
	v, ok := values[key]
	if !ok {
		return nil, fmt.Errorf("http_client credentials: the secret has no key %q", key)
	}
	switch v := v.(type) {
	case string:
		return map[string]any{"token": v}, nil
	case map[string]any:
		return v, nil
	}
	return nil, fmt.Errorf("http_client credentials: key %q must hold a token string or a map", key)
}

// Hosts returns where credentials are sent: the base_url's host and port
// ("api.example.com:443", the scheme's default port made explicit), or
// nothing without a base_url.
func (c Config) Hosts() []string {
	if c.base == nil {
		return nil
	}
	o := origin(c.base)
	port := o[strings.LastIndexByte(o, ':')+1:]
	return []string{net.JoinHostPort(strings.ToLower(c.base.Hostname()), port)}
}

// Target describes the client: its base_url, or "(no base_url)".
func (c Config) Target() string {
	if c.base == nil {
		return "(no base_url)"
	}
	return c.base.String()
}

// Origin is the base URL's scheme://host:port (the pool's metrics label:
// no path or query, which may carry tokens).
func (c Config) Origin() string {
	if c.base == nil {
		return "(no base_url)"
	}
	return origin(c.base)
}

// origin is scheme://host:port with the default port made explicit.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

// resolve turns a request URL into an absolute one. Absolute URLs are used
// as they are; relative ones are appended to base_url's path (as httpx
// does: base "http://h/api/v1" + "users" or "/users" = "http://h/api/v1/users").
func (c Config) resolve(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid URL: %w", err)
	}
	switch {
	case u.IsAbs():
	case c.base == nil:
		return nil, fmt.Errorf("relative URL %q needs a base_url", raw)
	case u.Host != "": // "//host/path": the base's scheme, another host
		u = c.base.ResolveReference(u)
	default:
		j := c.base.JoinPath(u.EscapedPath())
		if strings.HasSuffix(u.Path, "/") && !strings.HasSuffix(j.Path, "/") {
			j.Path += "/"
		}
		j.RawQuery = joinQuery(c.base.RawQuery, u.RawQuery)
		u = j
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("URL scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("URL has no host")
	}
	return u, nil
}

func joinQuery(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "&" + b
}

// CredentialHeaderValues returns the values of the credential headers
// (for example the encoded Basic authorization), so that the broker can
// register them with a redactor.
func (c Config) CredentialHeaderValues() []string {
	var out []string
	for _, vs := range c.creds {
		out = append(out, vs...)
	}
	return out
}
