package postgres

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

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

// Hosts returns the host names (or addresses) the pool will connect to,
// for checking against a secret's allowed hosts.
func (c Config) Hosts() []string {
	if c.dsn != nil {
		hosts := []string{c.dsn.ConnConfig.Host}
		for _, f := range c.dsn.ConnConfig.Fallbacks {
			hosts = append(hosts, f.Host)
		}
		return hosts
	}
	return []string{c.Host}
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
	return pc, nil
}

// quote quotes a value for a keyword/value connection string.
func quote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `'`, `\'`)
	return "'" + s + "'"
}
