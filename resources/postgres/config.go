package postgres

import (
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kailash-gateway/kgw/resources/internal/confmap"
)

// Config is a database resource's configuration: the keys of DESIGN.md §6
// with their defaults applied, plus the credentials merged from a secret.
// The exported fields are the canonical form of the config (they never hold
// credentials); the credentials are kept in unexported fields.
type Config struct {
	Host           string            `json:"host"`
	Port           int               `json:"port"`
	Database       string            `json:"database"`
	User           string            `json:"user"`
	SSLMode        string            `json:"sslmode"`
	MinSize        int               `json:"min_size"`
	MaxSize        int               `json:"max_size"`
	Timeout        time.Duration     `json:"timeout"`
	CommandTimeout time.Duration     `json:"command_timeout"`
	ServerSettings map[string]string `json:"server_settings,omitempty"`
	// InsecurePasswordAuth lets the pool answer a server that asks for the
	// password in clear text or as MD5 over a connection that is not TLS
	// with a verified certificate (sslmode verify-full). Without it such a
	// server gets nothing: only SCRAM-SHA-256, or no authentication, is
	// accepted (see requireAuth).
	InsecurePasswordAuth bool `json:"insecure_password_auth,omitempty"`

	password string
	dsn      *pgxpool.Config // set when the credentials carry a dsn
}

// Defaults of the database config keys.
const (
	DefaultHost    = "localhost"
	DefaultPort    = 5432
	DefaultMaxSize = 10
	DefaultTimeout = 10 * time.Second
)

var sslModes = map[string]bool{"": true, "disable": true, "allow": true, "prefer": true,
	"require": true, "verify-ca": true, "verify-full": true}

// ParseConfig reads a database config map, applies the defaults and checks
// every key. Unknown keys are errors.
func ParseConfig(m map[string]any) (Config, error) {
	r := confmap.New("database config", m)
	c := Config{
		Host:           r.String("host", DefaultHost),
		Port:           r.Int("port", DefaultPort),
		Database:       r.String("database", ""),
		User:           r.String("user", ""),
		SSLMode:        r.String("sslmode", ""),
		MinSize:        r.Int("min_size", 0),
		MaxSize:        r.Int("max_size", DefaultMaxSize),
		Timeout:        r.Seconds("timeout", DefaultTimeout),
		CommandTimeout: r.Seconds("command_timeout", 0),
		ServerSettings: r.StringMap("server_settings"),

		InsecurePasswordAuth: r.Bool("insecure_password_auth", false),
	}
	if err := r.Err(true); err != nil {
		return Config{}, err
	}
	return c, c.check()
}

func (c Config) check() error {
	switch {
	case c.Host == "":
		return fmt.Errorf("database config: host is empty")
	case strings.ContainsAny(c.Host, ","):
		// libpq and pgx read "a,b" as a list of hosts to try in turn: the
		// credentials would go to each. A list belongs in a secret's dsn,
		// whose every host is checked against allowed_hosts.
		return fmt.Errorf("database config: host must be a single host name or address, not a list")
	case c.Port < 1 || c.Port > 65535:
		return fmt.Errorf("database config: port %d out of range", c.Port)
	case !sslModes[c.SSLMode]:
		return fmt.Errorf("database config: unknown sslmode %q", c.SSLMode)
	case c.MaxSize < 1 || c.MaxSize > 10000:
		return fmt.Errorf("database config: max_size must be between 1 and 10000")
	case c.MinSize < 0 || c.MinSize > c.MaxSize:
		return fmt.Errorf("database config: min_size must be between 0 and max_size")
	case c.Timeout <= 0:
		return fmt.Errorf("database config: timeout must be positive")
	}
	return nil
}

// MergeCredentials merges a secret's values into c: user (or username),
// password, host, port, database, or a dsn that replaces the connection
// target entirely (pool settings still come from the config). Errors never
// contain values.
func (c *Config) MergeCredentials(values map[string]any) error {
	r := confmap.New("database credentials", values)
	if r.Has("dsn") {
		dsn := r.String("dsn", "")
		if err := r.Err(false); err != nil {
			return err
		}
		pc, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			// The parse error may quote the dsn; say only that it is invalid.
			return fmt.Errorf("database credentials: dsn is not a valid connection string")
		}
		c.dsn = pc
		return nil
	}
	if u := r.String("user", ""); u != "" {
		c.User = u
	}
	if u := r.String("username", ""); u != "" {
		c.User = u
	}
	c.password = r.String("password", c.password)
	c.Host = r.String("host", c.Host)
	c.Port = r.Int("port", c.Port)
	c.Database = r.String("database", c.Database)
	if err := r.Err(false); err != nil {
		return err
	}
	return c.check()
}

// Hosts returns every target the pool may dial, as "host:port" (a Unix
// socket directory stays a path), for checking against a secret's allowed
// hosts. They are read from the connection config pgx will use — the
// primary host and every fallback (each host of a list, each TLS attempt)
// — so nothing pgx would dial escapes the check. A config that pgx cannot
// parse gives a single "" (which no allowed_hosts pattern matches).
func (c Config) Hosts() []string {
	pc, err := c.poolConfig()
	if err != nil {
		return []string{""}
	}
	hosts := []string{dialTarget(pc.ConnConfig.Host, pc.ConnConfig.Port)}
	for _, f := range pc.ConnConfig.Fallbacks {
		if h := dialTarget(f.Host, f.Port); !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

func dialTarget(host string, port uint16) string {
	if strings.HasPrefix(host, "/") {
		return host
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// Target describes where the pool connects, without credentials:
// "host:port/database".
func (c Config) Target() string {
	host, port, db := c.Host, c.Port, c.Database
	if c.dsn != nil {
		host, port, db = c.dsn.ConnConfig.Host, int(c.dsn.ConnConfig.Port), c.dsn.ConnConfig.Database
	}
	return net.JoinHostPort(host, strconv.Itoa(port)) + "/" + db
}

// poolConfig builds the pgxpool config. Settings the environment could
// supply (PGPASSWORD, a passfile) are overwritten so that only the resource
// spec and its secret decide where and as whom the pool connects.
func (c Config) poolConfig() (*pgxpool.Config, error) {
	var pc *pgxpool.Config
	if c.dsn != nil {
		pc = c.dsn.Copy()
	} else {
		kv := []string{
			"host=" + quote(c.Host),
			"port=" + strconv.Itoa(c.Port),
		}
		if c.Database != "" {
			kv = append(kv, "dbname="+quote(c.Database))
		}
		if c.User != "" {
			kv = append(kv, "user="+quote(c.User))
		}
		if c.SSLMode != "" {
			kv = append(kv, "sslmode="+c.SSLMode)
		}
		var err error
		pc, err = pgxpool.ParseConfig(strings.Join(kv, " "))
		if err != nil {
			return nil, fmt.Errorf("database config: %w", err)
		}
		pc.ConnConfig.Password = c.password
	}
	pc.MaxConns = int32(c.MaxSize)
	pc.MinConns = int32(c.MinSize)
	pc.ConnConfig.ConnectTimeout = c.Timeout
	if pc.ConnConfig.RuntimeParams == nil {
		pc.ConnConfig.RuntimeParams = map[string]string{}
	}
	for k, v := range c.ServerSettings {
		pc.ConnConfig.RuntimeParams[k] = v
	}
	if c.CommandTimeout > 0 {
		pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(c.CommandTimeout.Milliseconds(), 10)
	}
	if _, ok := pc.ConnConfig.RuntimeParams["application_name"]; !ok {
		pc.ConnConfig.RuntimeParams["application_name"] = "kgw"
	}
	if !c.InsecurePasswordAuth && !verifiedTLS(pc.ConnConfig.Config) {
		pc.ConnConfig.RequireAuth = scramOnly
	}
	pc.ConnConfig.Tracer = queryTracer{db: pc.ConnConfig.Database, host: pc.ConnConfig.Host, port: int(pc.ConnConfig.Port)}
	return pc, nil
}

// scramOnly is the require_auth policy of a pool that has not opted in to
// insecure password authentication: SCRAM-SHA-256, or a server that asks
// for no authentication at all (trust, peer over TLS client certificates).
// A server that asks for the password in clear text or MD5 — which a host
// impersonating the database would do to learn it — is refused before pgx
// sends anything.
const scramOnly = "scram-sha-256,none"

// verifiedTLS reports whether every attempt cfg makes is TLS with a
// certificate verified for the host name (sslmode verify-full): then the
// server is who the config names and may ask for the password however it
// likes.
func verifiedTLS(cfg pgconn.Config) bool {
	ok := func(t *tls.Config) bool { return t != nil && !t.InsecureSkipVerify && t.ServerName != "" }
	if !ok(cfg.TLSConfig) {
		return false
	}
	for _, f := range cfg.Fallbacks {
		if !ok(f.TLSConfig) {
			return false
		}
	}
	return true
}

// quote quotes a value for a keyword/value connection string.
func quote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `'`, `\'`)
	return "'" + s + "'"
}
